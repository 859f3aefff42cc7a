// Replaces every form of the global operator new with a counting version that forwards to
// malloc / aligned_alloc, and every operator delete with free.
#include "alloc_counter.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {

std::atomic<long long> g_allocations{0};

void* counted(std::size_t size, std::size_t align = 0) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  return std::aligned_alloc(align, (size + align - 1) / align * align);
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
