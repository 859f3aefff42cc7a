// Counts calls of the global operator new (every form) in the unit-test binary.
//
// The replacement operators live in alloc_counter.cpp; tests use the counter to check that a
// code path performs no heap allocation once warmed up.
#pragma once

namespace dp_test {

// The number of global operator new calls so far in this process, all threads together.
long long heap_allocations();

}  // namespace dp_test
