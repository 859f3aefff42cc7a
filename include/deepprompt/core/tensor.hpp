#pragma once
// Tensor<T, Rank, Device>: a handle to a contiguous, row-major, 64-byte aligned buffer with
// run-time extents and a compile-time rank.
//
// Copies are shallow (they share the buffer, like torch.Tensor); clone() copies the data.
// reshape() and slice() return views on the same buffer. A default-constructed tensor is empty.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <numeric>
#include <span>
#include <type_traits>
#include <utility>

#include "device.hpp"
#include "error.hpp"
#include "storage.hpp"

namespace deepprompt {

using index_t = std::ptrdiff_t;

template <std::size_t Rank>
using Shape = std::array<index_t, Rank>;

template <std::size_t Rank>
constexpr index_t numel(const Shape<Rank>& s) {
  index_t n = 1;
  for (auto e : s) n *= e;
  return n;
}

template <class T, std::size_t Rank, DevicePolicy Device = Cpu>
class Tensor {
  static_assert(std::is_trivially_copyable_v<T>, "Tensor elements must be trivially copyable");
  static constexpr bool on_host = std::is_same_v<Device, Cpu>;

 public:
  using value_type = T;
  using device_type = Device;
  static constexpr std::size_t rank = Rank;

  Tensor() = default;

  /// A new tensor of this shape; its elements are uninitialised.
  /// requires: every extent >= 0.
  explicit Tensor(const Shape<Rank>& shape) : shape_(shape) {
    for (auto e : shape)
      if (e < 0) throw ShapeError("Tensor: negative extent in " + shape_str(shape));
    const std::size_t bytes = static_cast<std::size_t>(numel(shape)) * sizeof(T);
    block_ = device_pool(Device{}).acquire(bytes);
    data_ = reinterpret_cast<T*>(block_->data());
  }

  static Tensor zeros(const Shape<Rank>& shape)
    requires on_host
  { return full(shape, T{}); }
  static Tensor full(const Shape<Rank>& shape, T value)
    requires on_host
  {
    Tensor t(shape);
    t.fill(value);
    return t;
  }
  /// A new tensor holding a copy of `values` (row-major). requires: values.size() == numel(shape).
  static Tensor from(const Shape<Rank>& shape, std::span<const T> values)
    requires on_host
  {
    if (static_cast<index_t>(values.size()) != numel(shape))
      throw ShapeError(detail::cat("Tensor::from: ", values.size(), " values for shape ", shape_str(shape)));
    Tensor t(shape);
    if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(T));
    return t;
  }
  static Tensor from(const Shape<Rank>& shape, std::initializer_list<T> values)
    requires on_host
  {
    return from(shape, std::span<const T>(values.begin(), values.size()));
  }
  /// A view on memory the caller owns and keeps alive (nothing is copied or freed).
  static Tensor borrow(T* data, const Shape<Rank>& shape) {
    Tensor t;
    t.data_ = data;
    t.shape_ = shape;
    return t;
  }

  Tensor(const Tensor& o) : data_(o.data_), block_(o.block_), shape_(o.shape_) { retain(block_); }
  Tensor(Tensor&& o) noexcept : data_(o.data_), block_(o.block_), shape_(o.shape_) {
    o.data_ = nullptr;
    o.block_ = nullptr;
    o.shape_ = {};
  }
  Tensor& operator=(const Tensor& o) {
    if (this != &o) {
      retain(o.block_);
      deepprompt::release(block_);
      data_ = o.data_;
      block_ = o.block_;
      shape_ = o.shape_;
    }
    return *this;
  }
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      deepprompt::release(block_);
      data_ = std::exchange(o.data_, nullptr);
      block_ = std::exchange(o.block_, nullptr);
      shape_ = std::exchange(o.shape_, {});
    }
    return *this;
  }
  ~Tensor() { deepprompt::release(block_); }

  // --- shape -------------------------------------------------------------------------------
  const Shape<Rank>& shape() const { return shape_; }
  index_t extent(std::size_t axis) const { return shape_[axis]; }
  index_t size() const { return numel(shape_); }
  bool empty() const { return data_ == nullptr; }
  /// Row-major strides in elements.
  Shape<Rank> strides() const {
    Shape<Rank> s{};
    index_t acc = 1;
    for (std::size_t i = Rank; i-- > 0;) {
      s[i] = acc;
      acc *= shape_[i];
    }
    return s;
  }

  // --- data (handle semantics: a const Tensor still refers to mutable elements) -------------
  // Element access below is for host tensors; device tensors go through their backend.
  T* data() const { return data_; }
  T* begin() const
    requires on_host
  {
    return data_;
  }
  T* end() const
    requires on_host
  {
    return data_ + size();
  }
  std::span<T> span() const
    requires on_host
  {
    return {data_, static_cast<std::size_t>(size())};
  }

  template <class... I>
    requires(on_host && sizeof...(I) == Rank && (std::is_integral_v<I> && ...))
  T& operator()(I... idx) const {
    const index_t ix[] = {static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t a = 0; a < Rank; ++a) off = off * shape_[a] + ix[a];
    return data_[off];
  }
  T& item() const
    requires(on_host && Rank == 0)
  {
    return *data_;
  }

  void fill(T value) const
    requires on_host
  {
    std::fill(data_, data_ + size(), value);
  }
  /// A deep copy in a new buffer.
  Tensor clone() const
    requires on_host
  {
    Tensor t(shape_);
    if (size()) std::memcpy(t.data_, data_, static_cast<std::size_t>(size()) * sizeof(T));
    return t;
  }
  /// Copies the elements of `src` into this tensor. requires: same shape.
  void copy_from(const Tensor& src) const
    requires on_host
  {
    check_shapes(src.shape_ == shape_, "Tensor::copy_from", "shapes differ", shape_, src.shape_);
    if (size()) std::memmove(data_, src.data_, static_cast<std::size_t>(size()) * sizeof(T));
  }

  // --- views -------------------------------------------------------------------------------
  /// The same elements seen with another shape. requires: same number of elements.
  template <std::size_t NewRank>
  Tensor<T, NewRank, Device> reshape(const Shape<NewRank>& shape) const {
    if (numel(shape) != size())
      throw ShapeError("reshape: cannot view " + shape_str(shape_) + " as " + shape_str(shape));
    Tensor<T, NewRank, Device> v;
    v.data_ = data_;
    v.block_ = block_;
    v.shape_ = shape;
    retain(block_);
    return v;
  }
  /// Rows [begin, end) along the first axis, as a view. requires: 0 <= begin <= end <= extent(0).
  Tensor slice(index_t begin, index_t end) const
    requires(Rank >= 1)
  {
    if (begin < 0 || begin > end || end > shape_[0])
      throw ShapeError(detail::cat("slice: [", begin, ", ", end, ") out of range for ", shape_str(shape_)));
    Tensor v = *this;
    v.data_ = data_ + begin * (size() / std::max<index_t>(shape_[0], 1));
    v.shape_[0] = end - begin;
    return v;
  }
  /// Sub-tensor i along the first axis, as a view of rank Rank-1.
  Tensor<T, Rank - 1, Device> operator[](index_t i) const
    requires(Rank >= 1)
  {
    if (i < 0 || i >= shape_[0]) throw ShapeError(detail::cat("index ", i, " out of range for ", shape_str(shape_)));
    Shape<Rank - 1> s{};
    std::copy(shape_.begin() + 1, shape_.end(), s.begin());
    Tensor<T, Rank - 1, Device> v;
    v.data_ = data_ + i * numel(s);
    v.block_ = block_;
    v.shape_ = s;
    retain(block_);
    return v;
  }

 private:
  template <class, std::size_t, DevicePolicy>
  friend class Tensor;

  T* data_ = nullptr;
  Block* block_ = nullptr;  // null for empty and borrowed tensors
  Shape<Rank> shape_{};
};

/// A new tensor of `shape` on device D with every element equal to `value`. Host tensors are
/// filled here; another device's through its backend's fill(D, data, value, n) (found by
/// argument-dependent lookup, so only its translation units can call this).
template <class T, std::size_t Rank, DevicePolicy D>
Tensor<T, Rank, D> filled(const Shape<Rank>& shape, T value) {
  if constexpr (std::is_same_v<D, Cpu>) {
    return Tensor<T, Rank, D>::full(shape, value);
  } else {
    Tensor<T, Rank, D> t(shape);
    fill(D{}, t.data(), value, t.size());
    return t;
  }
}

/// A copy of a host tensor on device D; for D = Cpu the same tensor (no copy). Another device
/// copies through its backend's upload(D, host, device, n) (argument-dependent lookup).
template <DevicePolicy D, class T, std::size_t Rank>
Tensor<T, Rank, D> copy_to(const Tensor<T, Rank>& host) {
  if constexpr (std::is_same_v<D, Cpu>) {
    return host;
  } else {
    Tensor<T, Rank, D> t(host.shape());
    upload(D{}, static_cast<const T*>(host.data()), t.data(), host.size());
    return t;
  }
}

/// A host copy of a tensor on device D; for D = Cpu the same tensor (no copy). Another device
/// copies through its backend's download(D, device, host, n) (argument-dependent lookup).
template <class T, std::size_t Rank, DevicePolicy D>
Tensor<T, Rank> to_host(const Tensor<T, Rank, D>& t) {
  if constexpr (std::is_same_v<D, Cpu>) {
    return t;
  } else {
    Tensor<T, Rank> host(t.shape());
    download(D{}, static_cast<const T*>(t.data()), host.data(), t.size());
    return host;
  }
}

/// Element-wise conversion into a new tensor (float <-> double, float <-> bf16/fp16, ...).
template <class To, class From, std::size_t Rank>
Tensor<To, Rank> convert(const Tensor<From, Rank>& src) {
  Tensor<To, Rank> dst(src.shape());
  const From* s = src.data();
  To* d = dst.data();
  for (index_t i = 0, n = src.size(); i < n; ++i) d[i] = static_cast<To>(s[i]);
  return dst;
}

}  // namespace deepprompt
