// Replaces every form of the global operator new with a counting version that forwards to
// malloc / aligned_alloc, and every operator delete with free.
#include "alloc_counter.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#ifdef DEEPPROMPT_WRAP_MALLOC
extern "C" {
void* __real_malloc(std::size_t);
void* __real_aligned_alloc(std::size_t, std::size_t);
}
#endif

namespace {

std::atomic<long long> g_allocations{0};

// The allocator under operator new, not counted a second time when malloc is wrapped.
void* raw_malloc(std::size_t n) {
#ifdef DEEPPROMPT_WRAP_MALLOC
  return __real_malloc(n);
#else
  return std::malloc(n);
#endif
}
void* raw_aligned_alloc(std::size_t a, std::size_t n) {
#ifdef DEEPPROMPT_WRAP_MALLOC
  return __real_aligned_alloc(a, n);
#else
  return std::aligned_alloc(a, n);
#endif
}

void* counted(std::size_t size, std::size_t align = 0) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return raw_malloc(size);
  return raw_aligned_alloc(align, (size + align - 1) / align * align);
}

void* counted_or_throw(std::size_t size, std::size_t align = 0) {
  if (void* p = counted(size, align)) return p;
  throw std::bad_alloc{};
}

}  // namespace

namespace dp_test {
long long heap_allocations() { return g_allocations.load(std::memory_order_relaxed); }
}  // namespace dp_test

using std::align_val_t;
using std::nothrow_t;
using std::size_t;

void* operator new(size_t n) { return counted_or_throw(n); }
void* operator new[](size_t n) { return counted_or_throw(n); }
void* operator new(size_t n, const nothrow_t&) noexcept { return counted(n); }
void* operator new[](size_t n, const nothrow_t&) noexcept { return counted(n); }
void* operator new(size_t n, align_val_t a) { return counted_or_throw(n, size_t(a)); }
void* operator new[](size_t n, align_val_t a) { return counted_or_throw(n, size_t(a)); }
void* operator new(size_t n, align_val_t a, const nothrow_t&) noexcept { return counted(n, size_t(a)); }
void* operator new[](size_t n, align_val_t a, const nothrow_t&) noexcept { return counted(n, size_t(a)); }

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, align_val_t) noexcept { std::free(p); }
void operator delete(void* p, align_val_t, const nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, align_val_t, const nothrow_t&) noexcept { std::free(p); }

// C allocation functions too (Eigen, std::aligned_alloc in our pools): with the linker's
// --wrap (tests/CMakeLists.txt), calls from the test binary's own code land here first.
// Without --wrap these functions are never called and the counter sees operator new only.
#ifdef DEEPPROMPT_WRAP_MALLOC
extern "C" {
void* __real_calloc(size_t, size_t);
void* __real_realloc(void*, size_t);
int __real_posix_memalign(void**, size_t, size_t);

void* __wrap_malloc(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __real_malloc(n);
}
void* __wrap_calloc(size_t n, size_t s) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __real_calloc(n, s);
}
void* __wrap_realloc(void* p, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __real_realloc(p, n);
}
void* __wrap_aligned_alloc(size_t a, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void** p, size_t a, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __real_posix_memalign(p, a, n);
}
}
#endif
