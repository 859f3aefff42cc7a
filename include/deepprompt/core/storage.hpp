#pragma once
// Storage: reference-counted, 64-byte aligned memory blocks from a caching pool.
//
// Tensor buffers (parameters and activations alike) come from MemoryPool::cpu(). A released
// block goes back to a free list of its size class instead of to the system, so that after a
// warm-up step of the same shapes, a training step asks the system for no memory at all; and a
// block is released as soon as no tensor refers to it, so activations that no backward closure
// captured are freed during the forward pass (the arena of DESIGN.md kept them all to the end).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>

#include "device.hpp"

namespace deepprompt {

inline constexpr std::size_t kAlignment = 64;

class MemoryPool;

/// The bookkeeping of one buffer. For host memory it sits in the cache line in front of the
/// data (one allocation); for device memory it lives on the host and points to the data.
struct alignas(kAlignment) Block {
  std::atomic<std::int64_t> refs{1};
  std::size_t capacity = 0;  // usable bytes
  int size_class = 0;
  Block* next_free = nullptr;
  MemoryPool* pool = nullptr;
  std::byte* data_ = nullptr;

  std::byte* data() const { return data_; }
};
static_assert(sizeof(Block) == kAlignment);

/// Usage counters of a pool; `system_allocations` is what a no-allocation test looks at.
struct PoolStats {
  std::size_t system_allocations = 0;  // blocks obtained from the system, ever
  std::size_t bytes_in_use = 0;        // capacity of blocks held by tensors now
  std::size_t peak_bytes_in_use = 0;
  std::size_t bytes_cached = 0;        // capacity of blocks waiting in free lists
};

/// A thread-safe caching allocator of Blocks with size classes four per power of two
/// (at most 25% slack). Blocks are never returned to the system until trim().
/// The default pool serves host memory; a pool built with a Backing serves another device's
/// memory (backend/cuda gives one over cudaMalloc/cudaFree).
class MemoryPool {
 public:
  struct Backing {
    void* (*allocate)(std::size_t bytes);  // throws on failure
    void (*deallocate)(void* p);
  };

  MemoryPool() = default;
  explicit MemoryPool(Backing backing) : backing_(backing), has_backing_(true) {}
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;
  ~MemoryPool() { trim(); }

  /// The process-wide pool of host memory.
  static MemoryPool& cpu() {
    static MemoryPool* pool = new MemoryPool();  // never destroyed: tensors may outlive main()
    return *pool;
  }

  /// ensures: a block with capacity >= bytes and refs == 1.
  Block* acquire(std::size_t bytes) {
    const int cls = size_class(bytes);
    std::lock_guard lock(mutex_);
    Block* b = free_[cls];
    if (b) {
      free_[cls] = b->next_free;
      stats_.bytes_cached -= b->capacity;
    } else {
      const std::size_t cap = class_capacity(cls);
      if (has_backing_) {
        b = new Block();
        try {
          b->data_ = static_cast<std::byte*>(backing_.allocate(cap));
        } catch (...) {
          delete b;
          throw;
        }
      } else {
        void* raw = std::aligned_alloc(kAlignment, sizeof(Block) + (cap + kAlignment - 1) / kAlignment * kAlignment);
        if (!raw) throw std::bad_alloc();
        b = new (raw) Block();
        b->data_ = reinterpret_cast<std::byte*>(b + 1);
      }
      b->capacity = cap;
      b->size_class = cls;
      b->pool = this;
      ++stats_.system_allocations;
    }
    b->refs.store(1, std::memory_order_relaxed);
    b->next_free = nullptr;
    stats_.bytes_in_use += b->capacity;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return b;
  }

  /// requires: b came from acquire() of this pool and no one refers to it any more.
  void release(Block* b) {
    std::lock_guard lock(mutex_);
    stats_.bytes_in_use -= b->capacity;
    stats_.bytes_cached += b->capacity;
    b->next_free = free_[b->size_class];
    free_[b->size_class] = b;
  }

  /// Returns every cached block to the system.
  void trim() {
    std::lock_guard lock(mutex_);
    for (auto& head : free_) {
      while (head) {
        Block* next = head->next_free;
        stats_.bytes_cached -= head->capacity;
        if (has_backing_) {
          backing_.deallocate(head->data_);
          delete head;
        } else {
          head->~Block();
          std::free(head);
        }
        head = next;
      }
    }
  }

  PoolStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 private:
  static constexpr int kClasses = 4 * 64;

  // Class c covers capacities up to class_capacity(c); the smallest is one cache line.
  static int size_class(std::size_t bytes) {
    if (bytes <= kAlignment) return 0;
    const int e = 63 - __builtin_clzll(bytes - 1);  // 2^e < bytes <= 2^(e+1)
    const std::size_t base = std::size_t{1} << e;
    const std::size_t quarter = base >> 2;
    const int q = static_cast<int>((bytes - base + quarter - 1) / quarter);  // 1..4
    return 4 * (e - 6) + q;  // e >= 6 here
  }
  static std::size_t class_capacity(int cls) {
    if (cls == 0) return kAlignment;
    const int e = (cls - 1) / 4 + 6;
    const int q = (cls - 1) % 4 + 1;
    const std::size_t base = std::size_t{1} << e;
    return base + static_cast<std::size_t>(q) * (base >> 2);
  }

  Backing backing_{};
  bool has_backing_ = false;
  mutable std::mutex mutex_;
  Block* free_[kClasses] = {};
  PoolStats stats_;
};

/// Adds a reference to a block (null allowed).
inline void retain(Block* b) {
  if (b) b->refs.fetch_add(1, std::memory_order_relaxed);
}
/// Drops a reference; the last one returns the block to its pool (null allowed).
inline void release(Block* b) {
  if (b && b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) b->pool->release(b);
}

/// The pool that serves a device's memory. The Cuda overload is defined by
/// backend/cuda/memory.cuh, so only CUDA translation units can allocate device tensors.
inline MemoryPool& device_pool(Cpu) { return MemoryPool::cpu(); }
MemoryPool& device_pool(Cuda);

}  // namespace deepprompt
