// nash::Tensor: a reference-counted handle to a strided float32/float64 array on a device, with autograd state.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "nash/core/device.h"
#include "nash/core/error.h"

namespace nash {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// Raw memory owned by one allocation on one device. Views share a Storage.
class Storage {
 public:
  Storage(std::size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Bumped by every in-place write; autograd uses it to detect a saved tensor changed under it.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }
  static int64_t live_bytes();  // CPU bytes currently allocated by all storages (for leak tests)

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
  Device device_;
  uint64_t version_ = 0;
};

class Node;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::Float32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;           // set on results of recorded ops
  std::shared_ptr<Node> grad_accumulator;  // leaves that require grad, created lazily
  std::shared_ptr<TensorImpl> grad;        // accumulated gradient of a leaf
  bool retains_grad = false;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t size(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  int64_t storage_offset() const;

  // Raw element pointer (for kernels). T must match dtype().
  template <class T>
  T* data_ptr() const;
  void* raw_data() const;

  // Value access (copies to the host where needed).
  double item() const;
  template <class T = float>
  std::vector<T> to_vector() const;

  // Conversions
  Tensor to(Device d) const;
  Tensor to(DType t) const;
  Tensor contiguous() const;
  Tensor clone() const;

  // Views (share storage, differentiable)
  Tensor reshape(const Shape& s) const;
  Tensor view(const Shape& s) const { return reshape(s); }
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const Shape& dims) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // drops dim
  Tensor expand(const Shape& s) const;

  // Autograd
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  Tensor grad() const;                 // undefined when no gradient has been accumulated
  void set_grad(const Tensor& g);      // replace (undefined tensor clears it)
  void zero_grad() { set_grad(Tensor()); }
  void retain_grad();
  Tensor detach() const;  // shares storage, no history
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false, bool create_graph = false) const;

  // In-place (no history; error when recording would be needed)
  Tensor& zero_();
  Tensor& fill_(double v);
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double v);

  // Operators (differentiable; scalars broadcast)
  Tensor operator-() const;
  Tensor sum() const;
  Tensor mean() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  std::string str() const;  // "float32 cpu [2, 3]"

 private:
  void require_defined(const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

template <>
float* Tensor::data_ptr<float>() const;
template <>
double* Tensor::data_ptr<double>() const;

// Creates an uninitialised contiguous tensor.
Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor scalar_tensor(double value, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor from_vector(const std::vector<float>& values, const Shape& shape, Device device = Device::cpu());
Tensor from_vector(const std::vector<double>& values, const Shape& shape, Device device = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);

// Printing like libtorch: the values, then "[ CPUFloatType{2,3} ]".
std::ostream& operator<<(std::ostream& os, const Tensor& t);
// t's shape as shape_str writes it, or "an undefined tensor": for error messages about any input.
std::string shape_str(const Tensor& t);

}  // namespace nash
