#pragma once
// Arena: a bump allocator for the tape's small objects (backward closures, Var nodes).
// reset() runs the destructors of what was made and keeps the memory; if a step needed more
// than one chunk, the chunks are merged into one big enough for the whole step, so from the
// second step of the same size on, the arena asks the system for nothing.
#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace deepprompt {

class Arena {
 public:
  explicit Arena(std::size_t first_chunk = std::size_t{1} << 16) : next_chunk_(first_chunk) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() {
    reset();
    for (auto& c : chunks_) std::free(c.base);
  }

  /// Raw memory, valid until reset(). requires: align is a power of two <= 64.
  void* allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t)) {
    std::size_t p = (top_ + align - 1) & ~(align - 1);
    if (current_ == nullptr || p + bytes > limit_) {
      grow(bytes + align);
      p = (top_ + align - 1) & ~(align - 1);
    }
    top_ = p + bytes;
    used_ += bytes;
    return reinterpret_cast<void*>(p);
  }

  /// Constructs a T in the arena; its destructor runs at reset() (in reverse order of making).
  template <class T, class... Args>
  T* make(Args&&... args) {
    T* obj = new (allocate(sizeof(T), alignof(T))) T(std::forward<Args>(args)...);
    if constexpr (!std::is_trivially_destructible_v<T>) {
      auto* d = new (allocate(sizeof(Dtor), alignof(Dtor))) Dtor{[](void* o) { static_cast<T*>(o)->~T(); }, obj, dtors_};
      dtors_ = d;
    }
    return obj;
  }

  /// Destroys everything made since the last reset and makes the memory reusable.
  void reset() {
    for (Dtor* d = dtors_; d; d = d->next) d->destroy(d->object);
    dtors_ = nullptr;
    if (chunks_.size() > 1) {  // merge: one chunk that holds a whole step
      std::size_t total = 0;
      for (auto& c : chunks_) total += c.size, std::free(c.base);
      chunks_.clear();
      next_chunk_ = total;
      current_ = nullptr;
      grow(0);
    } else if (!chunks_.empty()) {
      current_ = &chunks_.front();
      top_ = reinterpret_cast<std::size_t>(current_->base);
      limit_ = top_ + current_->size;
    }
    used_ = 0;
  }

  std::size_t bytes_used() const { return used_; }
  std::size_t system_allocations() const { return system_allocations_; }

 private:
  struct Chunk {
    std::byte* base;
    std::size_t size;
  };
  struct Dtor {
    void (*destroy)(void*);
    void* object;
    Dtor* next;
  };

  void grow(std::size_t at_least) {
    std::size_t size = next_chunk_;
    while (size < at_least) size *= 2;
    auto* base = static_cast<std::byte*>(std::aligned_alloc(64, (size + 63) / 64 * 64));
    if (!base) throw std::bad_alloc();
    ++system_allocations_;
    if (chunks_.size() == chunks_.capacity()) chunks_.reserve(chunks_.size() * 2 + 4);
    chunks_.push_back({base, size});
    current_ = &chunks_.back();
    top_ = reinterpret_cast<std::size_t>(base);
    limit_ = top_ + size;
    next_chunk_ = size * 2;
  }

  std::vector<Chunk> chunks_;
  Chunk* current_ = nullptr;
  std::size_t top_ = 0, limit_ = 0, used_ = 0;
  std::size_t next_chunk_;
  std::size_t system_allocations_ = 0;
  Dtor* dtors_ = nullptr;
};

}  // namespace deepprompt
