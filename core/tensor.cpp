// Tensor basics: storage, metadata, factories, host access, device/dtype conversion, in-place ops and printing.
#include "nash/core/tensor.h"

#include <sys/mman.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>

#include "core/backend.h"
#include "kernels/cpu/cpu.h"
#include "nash/core/autograd.h"
#include "nash/core/ops.h"

namespace nash {

namespace {
std::atomic<int64_t> g_live_bytes{0};
constexpr std::size_t kAlign = 64;
constexpr std::size_t kHugeAlign = std::size_t(2) << 20;  // x86-64's huge page
// Blocks from here on use huge pages: glibc serves larger blocks by a fresh mmap every time (its mmap threshold
// stops growing at 32 MiB), so each one faults in all its pages; smaller blocks are reused from the heap.
constexpr std::size_t kHugeMin = std::size_t(32) << 20;
}  // namespace

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string shape_str(const Tensor& t) {
  return t.defined() ? shape_str(t.shape()) : std::string("an undefined tensor");
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

Storage::Storage(std::size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_host_memory()) {
    std::size_t rounded = (std::max<std::size_t>(nbytes, 1) + kAlign - 1) / kAlign * kAlign;
    if (rounded >= kHugeMin) {
      // Large blocks on 2 MiB boundaries, marked for transparent huge pages: a fresh block then faults in 512
      // times fewer pages (a 256 MiB result took 65,536 page faults, ~20x the time of the copy that fills it).
      rounded = (rounded + kHugeAlign - 1) / kHugeAlign * kHugeAlign;
      data_ = std::aligned_alloc(kHugeAlign, rounded);
#ifdef MADV_HUGEPAGE
      if (data_) ::madvise(data_, rounded, MADV_HUGEPAGE);
#endif
    } else {
      data_ = std::aligned_alloc(kAlign, rounded);
    }
    NASH_CHECK(data_ != nullptr, "out of host memory allocating ", nbytes, " bytes");
    g_live_bytes += static_cast<int64_t>(nbytes);
    // Emulated device memory starts as NaN, so a kernel that leaves an output element unwritten is caught.
    if (device.is_emu_cuda()) std::memset(data_, 0xFF, rounded);
  } else {
    data_ = detail::cuda_malloc(std::max<std::size_t>(nbytes, 1), device.index);
  }
}

Storage::~Storage() {
  if (device_.is_host_memory()) {
    std::free(data_);
    g_live_bytes -= static_cast<int64_t>(nbytes_);
  } else {
    detail::cuda_free(data_, device_.index);
  }
}

int64_t Storage::live_bytes() { return g_live_bytes.load(); }

// ---- metadata -------------------------------------------------------------------------
void Tensor::require_defined(const char* what) const {
  NASH_CHECK(impl_ != nullptr, what, ": called on an undefined tensor");
}
const Shape& Tensor::shape() const { require_defined("shape"); return impl_->shape; }
const Shape& Tensor::strides() const { require_defined("strides"); return impl_->strides; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { require_defined("dtype"); return impl_->dtype; }
Device Tensor::device() const { require_defined("device"); return impl_->storage->device(); }
int64_t Tensor::storage_offset() const { require_defined("storage_offset"); return impl_->offset; }

int64_t Tensor::size(int64_t dim) const {
  int64_t n = this->dim();
  NASH_CHECK(dim >= -n && dim < n, "size: dim ", dim, " out of range for a tensor of shape ", shape_str(shape()));
  return shape()[dim < 0 ? dim + n : dim];
}

bool Tensor::is_contiguous() const {
  require_defined("is_contiguous");
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  require_defined("data_ptr");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * element_size(impl_->dtype);
}

template <>
float* Tensor::data_ptr<float>() const {
  NASH_CHECK(dtype() == DType::Float32, "data_ptr<float>: tensor is ", dtype_name(dtype()));
  return static_cast<float*>(raw_data());
}
template <>
double* Tensor::data_ptr<double>() const {
  NASH_CHECK(dtype() == DType::Float64, "data_ptr<double>: tensor is ", dtype_name(dtype()));
  return static_cast<double*>(raw_data());
}

std::string Tensor::str() const {
  if (!impl_) return "undefined tensor";
  return std::string(dtype_name(dtype())) + " " + device().str() + " " + shape_str(shape());
}

// ---- factories --------------------------------------------------------------------------
Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t v : shape) NASH_CHECK(v >= 0, "empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<std::size_t>(shape_numel(shape)) * element_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  NASH_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
             "arange: invalid range start=", start, " end=", end, " step=", step);
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + step * static_cast<double>(i);
  return from_vector(v, {n}, device).to(dtype);
}

namespace {
template <class T>
Tensor from_host(const std::vector<T>& values, const Shape& shape, Device device, DType dtype) {
  NASH_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
             " values do not fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor cpu = empty(shape, dtype, Device::cpu());
  if (!values.empty()) std::memcpy(cpu.raw_data(), values.data(), values.size() * sizeof(T));
  return device.is_cpu() ? cpu : cpu.to(device);
}
}  // namespace

Tensor from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  return from_host(values, shape, device, DType::Float32);
}
Tensor from_vector(const std::vector<double>& values, const Shape& shape, Device device) {
  return from_host(values, shape, device, DType::Float64);
}

// ---- host access and conversion -----------------------------------------------------------
Tensor Tensor::contiguous() const {
  require_defined("contiguous");
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  require_defined("clone");
  Tensor out = empty(shape(), dtype(), device());
  {
    NoGradGuard g;
    out.copy_(*this);
  }
  return autograd::record("clone", out, {*this}, {},
                          [](const BackwardContext&, const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(Device d) const {
  require_defined("to");
  if (d == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), d);
  detail::copy_bytes(out.raw_data(), d, src.raw_data(), device(), static_cast<std::size_t>(numel()) * element_size(dtype()));
  Device from = device();
  return autograd::record("to_device", out, {*this}, {},
                          [from](const BackwardContext&, const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor Tensor::to(DType t) const {
  require_defined("to");
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), t, device());
  detail::call("to(dtype)", device(), &detail::Backend::copy, *this, out);
  DType from = dtype();
  return autograd::record("to_dtype", out, {*this}, {},
                          [from](const BackwardContext&, const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

double Tensor::item() const {
  require_defined("item");
  NASH_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(),
             " elements; item() needs exactly one");
  Tensor h = device().is_cpu() ? *this : detach().to(Device::cpu());
  return dtype() == DType::Float32 ? static_cast<double>(*h.data_ptr<float>()) : *h.data_ptr<double>();
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  require_defined("to_vector");
  Tensor h = detach();
  if (!h.device().is_cpu()) h = h.to(Device::cpu());
  DType want = std::is_same<T, float>::value ? DType::Float32 : DType::Float64;
  if (h.dtype() != want) h = h.to(want);
  h = h.contiguous();
  const T* p = h.data_ptr<T>();
  return std::vector<T>(p, p + h.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;

// ---- autograd accessors ---------------------------------------------------------------------
bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  require_defined("requires_grad_");
  NASH_CHECK(is_leaf() || on, "requires_grad_(false): only leaf tensors can stop requiring grad; use detach()");
  impl_->requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const { return !impl_ || !impl_->grad_fn; }

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  require_defined("grad_fn");
  return impl_->grad_fn;
}

Tensor Tensor::grad() const {
  require_defined("grad");
  return impl_->grad ? Tensor(impl_->grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  require_defined("set_grad");
  if (g.defined())
    NASH_CHECK(g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()), " does not match tensor shape ",
               shape_str(shape()));
  impl_->grad = g.impl_ptr();
}

void Tensor::retain_grad() {
  require_defined("retain_grad");
  NASH_CHECK(false, "retain_grad: not supported; use nash::autograd::grad to get gradients of non-leaf tensors");
}

Tensor Tensor::detach() const {
  require_defined("detach");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->dtype = impl_->dtype;
  return Tensor(impl);
}

// ---- in-place ---------------------------------------------------------------------------------
namespace {
void check_inplace(const char* op, const Tensor& t) {
  NASH_CHECK(!(GradMode::is_enabled() && t.requires_grad()), op,
             ": in-place update of a tensor that requires grad while recording; wrap it in nash::NoGradGuard");
}
}  // namespace

Tensor& Tensor::fill_(double v) {
  require_defined("fill_");
  check_inplace("fill_", *this);
  if (numel() == 0) return *this;
  detail::call("fill_", device(), &detail::Backend::fill, *this, v);
  impl_->storage->bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::copy_(const Tensor& src) {
  require_defined("copy_");
  check_inplace("copy_", *this);
  NASH_CHECK(src.defined(), "copy_: source is undefined");
  Tensor s = src;
  if (s.shape() != shape()) s = s.expand(shape());
  if (device() == s.device()) {
    detail::call("copy_", device(), &detail::Backend::copy, s, *this);
  } else {
    // Across devices: convert and densify on the source device, move the bytes, then copy into place.
    Tensor c = (s.dtype() == dtype() ? s : s.to(dtype())).contiguous();
    const std::size_t nbytes = static_cast<std::size_t>(numel()) * element_size(dtype());
    if (is_contiguous()) {
      detail::copy_bytes(raw_data(), device(), c.raw_data(), c.device(), nbytes);
    } else {
      Tensor moved = empty(shape(), dtype(), device());
      detail::copy_bytes(moved.raw_data(), device(), c.raw_data(), c.device(), nbytes);
      detail::call("copy_", device(), &detail::Backend::copy, moved, *this);
    }
  }
  impl_->storage->bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  require_defined("add_");
  check_inplace("add_", *this);
  detail::require_same_device_dtype("add_", {this, &other});
  if (other.shape() == shape() && is_contiguous() && other.is_contiguous()) {
    detail::call("add_", device(), &detail::Backend::axpy, other, *this, alpha);
  } else {
    NoGradGuard g;
    copy_(add(*this, mul(other, alpha)));
  }
  impl_->storage->bump_version();
  return *this;
}

Tensor& Tensor::mul_(double v) {
  require_defined("mul_");
  check_inplace("mul_", *this);
  detail::call("mul_", device(), &detail::Backend::unary, math::Unary::MulScalar, v, 0.0, *this, *this);
  impl_->storage->bump_version();
  return *this;
}

Tensor Tensor::operator-() const { return neg(*this); }
Tensor Tensor::sum() const { return nash::sum(*this); }
Tensor Tensor::mean() const { return nash::mean(*this); }

// ---- printing -------------------------------------------------------------------------------------
namespace {
void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& shape, std::size_t dim, int64_t& idx,
               int indent) {
  if (dim == shape.size()) {
    os << std::setw(10) << v[idx++];
    return;
  }
  if (dim + 1 == shape.size()) {
    for (int64_t i = 0; i < shape[dim]; ++i) {
      if (i) os << " ";
      os << std::setw(10) << v[idx++];
    }
    return;
  }
  for (int64_t i = 0; i < shape[dim]; ++i) {
    if (dim + 2 < shape.size()) {
      os << "(" << i << ",.,.) =\n";
    }
    print_rec(os, v, shape, dim + 1, idx, indent + 1);
    if (i + 1 < shape[dim]) os << "\n";
  }
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "[ Tensor (undefined) ]";
  auto flags = os.flags();
  auto prec = os.precision();
  os << std::setprecision(4);
  std::vector<double> v = t.to_vector<double>();
  int64_t idx = 0;
  if (t.numel() > 0) {
    print_rec(os, v, t.shape(), 0, idx, 0);
    os << "\n";
  }
  std::string ty = std::string(t.device().is_cpu() ? "CPU" : "CUDA") + (t.dtype() == DType::Float32 ? "FloatType" : "DoubleType");
  os << "[ " << ty << "{";
  for (std::size_t i = 0; i < t.shape().size(); ++i) os << (i ? "," : "") << t.shape()[i];
  os << "}";
  if (t.requires_grad()) os << ", requires_grad";
  os << " ]";
  os.flags(flags);
  os.precision(prec);
  return os;
}

}  // namespace nash
