// The cuDNN convolution engine: conv2d and its input/weight gradients through cuDNN's v9 convolution API, float32
// with FMA math only (no TF32), algorithms from the v7 heuristics cached per shape, workspace from nash's allocator.
#include "kernels/cuda/check.h"
#include "kernels/cuda/cudnn_conv.h"

#include "nash/core/cuda.h"

#ifdef NASH_WITH_CUDNN
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <vector>
#endif

namespace nash {

namespace cuda {
#ifdef NASH_WITH_CUDNN
bool cudnn_available() { return is_available(); }
#else
bool cudnn_available() { return false; }
#endif
}  // namespace cuda

#ifdef NASH_WITH_CUDNN
// cuDNN statuses for NASH_CUDA_CHECK (kernels/cuda/check.h): the status text plus cuDNN's last detailed message.
namespace detail {
inline bool status_ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }
inline const char* status_text(cudnnStatus_t s) {
  thread_local std::string text;
  char msg[1024] = {0};
  cudnnGetLastErrorString(msg, sizeof msg);
  text = std::string(cudnnGetErrorString(s)) + " (status " + std::to_string(static_cast<int>(s)) + ")" +
         (msg[0] ? std::string(": ") + msg : std::string());
  return text.c_str();
}
}  // namespace detail

namespace cuda_impl {

namespace {

constexpr int kMaxDevices = 64;

// Makes the tensors' device current for the call: cuDNN handles and the memory they touch belong to one device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    NASH_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device_) NASH_CUDA_CHECK(cudaSetDevice(device_));
  }
  ~DeviceGuard() {
    if (prev_ != device_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_ = 0, prev_ = 0;
};

// One convolution problem: the algorithm cache key. Fields: n, c, h, w, o, kh, kw, ph, pw, sh, sw, dh, dw.
using Key = std::array<int, 13>;

// Per device: the handle, a mutex serialising its use (a cuDNN handle must not be used by two threads at once;
// calls only enqueue work, so holding it is cheap) and the algorithms chosen per problem.
struct PerDevice {
  std::mutex mu;
  cudnnHandle_t handle = nullptr;
  std::map<Key, cudnnConvolutionFwdAlgo_t> fwd;
  std::map<Key, cudnnConvolutionBwdDataAlgo_t> bwd_data;
  std::map<Key, cudnnConvolutionBwdFilterAlgo_t> bwd_filter;
};

PerDevice& per_device(int device) {
  // Never destroyed: cudnnDestroy during static destruction may run after the CUDA runtime has shut down.
  static std::array<PerDevice, kMaxDevices>* all = new std::array<PerDevice, kMaxDevices>();
  NASH_CHECK(device >= 0 && device < kMaxDevices, "cuDNN: invalid device index ", device);
  return (*all)[static_cast<std::size_t>(device)];
}

int to_int(const char* op, const char* what, int64_t v) {
  NASH_CHECK(v >= 0 && v <= INT_MAX, op, " (cuDNN): ", what, " ", v, " does not fit cuDNN's 32-bit sizes");
  return static_cast<int>(v);
}

void require_dense_f32(const char* op, const char* what, const Tensor& t, int64_t dims = 4) {
  NASH_CHECK(t.dtype() == DType::Float32, op, " (cuDNN): ", what, " must be float32, got ", dtype_name(t.dtype()));
  NASH_CHECK(t.dim() == dims, op, " (cuDNN): ", what, " must be ", dims, "-D, got ", shape_str(t.shape()));
  NASH_CHECK(t.is_contiguous(), op, " (cuDNN): ", what, " ", shape_str(t.shape()), " must be contiguous");
  // The legacy convolution API indexes tensors with 32-bit integers.
  NASH_CHECK(t.numel() <= INT_MAX, op, " (cuDNN): ", what, " ", shape_str(t.shape()), " has more than 2^31-1 elements",
             "; use the nash convolution engine (set_conv_engine(ConvEngine::Nash)) for it");
}

// Owns one cuDNN descriptor; a member of the typed wrappers below, so it is destroyed even when their setup throws.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
struct Owned {
  T d = nullptr;
  Owned() { NASH_CUDA_CHECK(Create(&d)); }
  ~Owned() {
    if (d) Destroy(d);
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
};

struct TensorDesc {  // dense NCHW float32
  Owned<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor> own;
  cudnnTensorDescriptor_t d = own.d;
  TensorDesc(const char* op, const char* what, int64_t n, int64_t c, int64_t h, int64_t w) {
    NASH_CUDA_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(op, what, n),
                                                to_int(op, what, c), to_int(op, what, h), to_int(op, what, w)));
  }
  TensorDesc(const char* op, const char* what, const Tensor& t)
      : TensorDesc(op, what, t.size(0), t.size(1), t.size(2), t.size(3)) {}
};

struct FilterDesc {  // weight (O, C, KH, KW)
  Owned<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor> own;
  cudnnFilterDescriptor_t d = own.d;
  FilterDesc(const char* op, const Tensor& w) {
    NASH_CUDA_CHECK(cudnnSetFilter4dDescriptor(d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(op, "weight", w.size(0)),
                                                to_int(op, "weight", w.size(1)), to_int(op, "weight", w.size(2)),
                                                to_int(op, "weight", w.size(3))));
  }
};

struct ConvDesc {
  Owned<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor> own;
  cudnnConvolutionDescriptor_t d = own.d;
  ConvDesc(const char* op, Int2 s, Int2 p, Int2 dil) {
    // nash's conv2d is a cross-correlation (no kernel flip), accumulated in float32.
    NASH_CUDA_CHECK(cudnnSetConvolution2dDescriptor(d, to_int(op, "padding", p.h), to_int(op, "padding", p.w),
                                                     to_int(op, "stride", s.h), to_int(op, "stride", s.w),
                                                     to_int(op, "dilation", dil.h), to_int(op, "dilation", dil.w),
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // CUDNN_DEFAULT_MATH would allow TF32 tensor cores on Ampere and later (10-bit mantissa); FMA keeps float32.
    NASH_CUDA_CHECK(cudnnSetConvolutionMathType(d, CUDNN_FMA_MATH));
  }
};

// Everything one call needs, with the device's handle locked and bound to the stream.
struct Call {
  DeviceGuard device;
  PerDevice& pd;
  std::unique_lock<std::mutex> lock;
  Device dev;
  Call(Device d, cudaStream_t stream) : device(d.index), pd(per_device(d.index)), lock(pd.mu), dev(d) {
    if (!pd.handle) NASH_CUDA_CHECK(cudnnCreate(&pd.handle));  // binds to the current (guarded) device
    NASH_CUDA_CHECK(cudnnSetStream(pd.handle, stream));
  }
};

Key make_key(const Tensor& x_like, const Tensor& w_like, Int2 s, Int2 p, Int2 d) {
  auto i = [](int64_t v) { return static_cast<int>(v); };  // already range-checked by the descriptors
  return {i(x_like.size(0)), i(x_like.size(1)), i(x_like.size(2)), i(x_like.size(3)), i(w_like.size(0)),
          i(w_like.size(2)),  i(w_like.size(3)),  i(p.h),          i(p.w),          i(s.h),
          i(s.w),             i(d.h),             i(d.w)};
}

// Device scratch memory from the caching allocator. Freeing it right after the call is safe: the block goes back
// to the free list of the same stream, so its next user is ordered after this call's kernels.
Tensor workspace(std::size_t bytes, Device dev) {
  if (bytes == 0) return Tensor();
  return empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, DType::Float32, dev);
}
void* ptr(const Tensor& t) { return t.defined() ? static_cast<void*>(t.data_ptr<float>()) : nullptr; }

std::string problem(const Tensor& a, const Tensor& b, Int2 s, Int2 p, Int2 d) {
  auto hw = [](Int2 v) { return "(" + std::to_string(v.h) + ", " + std::to_string(v.w) + ")"; };
  return shape_str(a.shape()) + " and " + shape_str(b.shape()) + ", stride " + hw(s) + ", padding " + hw(p) +
         ", dilation " + hw(d);
}

template <class Algo, class WorkspaceSize, class Execute>
bool try_algo(const char* exec_name, Call& call, Algo algo, WorkspaceSize workspace_size, Execute execute,
              std::string& refused) {
  const std::string name = " algo " + std::to_string(static_cast<int>(algo)) + ": ";
  std::size_t bytes = 0;
  cudnnStatus_t st = workspace_size(algo, &bytes);
  if (st != CUDNN_STATUS_SUCCESS) {
    refused += name + "workspace query " + cudnnGetErrorString(st) + ";";
    return false;
  }
  Tensor ws;
  try {
    ws = workspace(bytes, call.dev);
  } catch (const Error& e) {
    refused += name + e.what() + ";";
    return false;
  }
  st = execute(algo, ptr(ws), bytes);
  if (st == CUDNN_STATUS_SUCCESS) return true;
  if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED) {
    refused += name + cudnnGetErrorString(st) + ";";
    return false;
  }
  detail::fail_status(__FILE__, __LINE__, exec_name, detail::status_text(st));
}

// Runs the algorithm cached for key, or else the heuristics' candidates in their order of preference, caching the
// first that runs: a candidate may still be refused at execution, or need more workspace than can be allocated.
// heuristics() returns cuDNN's *AlgoPerf_t list; workspace_size(algo, &bytes) and execute(algo, ws, bytes) return
// a status; describe() names the problem in the error.
template <class Algo, class Heuristics, class WorkspaceSize, class Execute, class Describe>
void run_cached(const char* op, const char* exec_name, Call& call, std::map<Key, Algo>& cache, const Key& key,
                Heuristics heuristics, WorkspaceSize workspace_size, Execute execute, Describe describe) {
  std::string refused;
  auto it = cache.find(key);
  if (it != cache.end()) {
    if (try_algo(exec_name, call, it->second, workspace_size, execute, refused)) return;
    cache.erase(it);  // e.g. its workspace no longer fits: choose again
  }
  for (const auto& p : heuristics()) {
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    // Tensor-core kernels would round the operands to TF32 or half; nash's float32 contract rules them out.
    if (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (try_algo(exec_name, call, p.algo, workspace_size, execute, refused)) {
      cache[key] = p.algo;
      return;
    }
  }
  detail::fail(op, " (cuDNN): no float32 (FMA) algorithm ran for ", describe(), ";",
               refused.empty() ? " none offered" : refused,
               " (the nash convolution engine handles it: set_conv_engine(ConvEngine::Nash))");
}

// Zero-sized problems cuDNN rejects: returns true when out is already complete.
bool trivial(const Tensor& out, std::initializer_list<const Tensor*> ins, cudaStream_t stream) {
  if (out.numel() == 0) return true;
  for (const Tensor* t : ins)
    if (t->numel() == 0) {  // an empty sum: the result is zero
      const std::size_t bytes = static_cast<std::size_t>(out.numel()) * sizeof(float);
      NASH_CUDA_CHECK(cudaMemsetAsync(ptr(out), 0, bytes, stream));
      return true;
    }
  return false;
}

}  // namespace

void cudnn_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Int2 stride, Int2 padding, Int2 dilation,
                  const Tensor& out, cudaStream_t stream) {
  const char* op = "conv2d";
  require_dense_f32(op, "input", x);
  require_dense_f32(op, "weight", w);
  require_dense_f32(op, "output", out);
  if (bias.defined()) {
    require_dense_f32(op, "bias", bias, 1);
    NASH_CHECK(bias.size(0) == out.size(1), op, " (cuDNN): bias ", shape_str(bias.shape()), " does not match output ",
               shape_str(out.shape()));
  }
  Call call(out.device(), stream);
  if (trivial(out, {&x, &w}, stream)) return;
  TensorDesc xd(op, "input", x), yd(op, "output", out);
  FilterDesc wd(op, w);
  ConvDesc cd(op, stride, padding, dilation);
  int n = 0, c = 0, h = 0, wo = 0;
  NASH_CUDA_CHECK(cudnnGetConvolution2dForwardOutputDim(cd.d, xd.d, wd.d, &n, &c, &h, &wo));
  NASH_CHECK(n == out.size(0) && c == out.size(1) && h == out.size(2) && wo == out.size(3), op,
             " (cuDNN): cuDNN computes an output of (", n, ", ", c, ", ", h, ", ", wo, ") but nash allocated ",
             shape_str(out.shape()));
  cudnnHandle_t handle = call.pd.handle;
  const float one = 1.f, zero = 0.f;
  run_cached(
      op, "cudnnConvolutionForward", call, call.pd.fwd, make_key(x, w, stride, padding, dilation),
      [&] {
        int count = 0, got = 0;
        NASH_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &count));
        std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<std::size_t>(std::max(count, 1)));
        NASH_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, xd.d, wd.d, cd.d, yd.d,
                                                                static_cast<int>(perf.size()), &got, perf.data()));
        perf.resize(static_cast<std::size_t>(std::max(got, 0)));
        return perf;
      },
      [&](cudnnConvolutionFwdAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(handle, xd.d, wd.d, cd.d, yd.d, a, bytes);
      },
      [&](cudnnConvolutionFwdAlgo_t a, void* ws, std::size_t bytes) {
        return cudnnConvolutionForward(handle, &one, xd.d, ptr(x), wd.d, ptr(w), cd.d, a, ws, bytes, &zero, yd.d,
                                       ptr(out));
      },
      [&] { return problem(x, w, stride, padding, dilation); });
  if (bias.defined()) {
    // out += bias, broadcast from (1, O, 1, 1) over batch and pixels.
    TensorDesc bd(op, "bias", 1, bias.size(0), 1, 1);
    NASH_CUDA_CHECK(cudnnAddTensor(handle, &one, bd.d, ptr(bias), &one, yd.d, ptr(out)));
  }
}

void cudnn_conv2d_grad_input(const Tensor& grad_out, const Tensor& w, Int2 stride, Int2 padding, Int2 dilation,
                             const Tensor& grad_in, cudaStream_t stream) {
  const char* op = "conv2d_grad_input";
  require_dense_f32(op, "grad_out", grad_out);
  require_dense_f32(op, "weight", w);
  require_dense_f32(op, "grad_input", grad_in);
  Call call(grad_in.device(), stream);
  if (trivial(grad_in, {&grad_out, &w}, stream)) return;
  TensorDesc dyd(op, "grad_out", grad_out), dxd(op, "grad_input", grad_in);
  FilterDesc wd(op, w);
  ConvDesc cd(op, stride, padding, dilation);
  cudnnHandle_t handle = call.pd.handle;
  const float one = 1.f, zero = 0.f;
  run_cached(
      op, "cudnnConvolutionBackwardData", call, call.pd.bwd_data, make_key(grad_in, w, stride, padding, dilation),
      [&] {
        int count = 0, got = 0;
        NASH_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &count));
        std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<std::size_t>(std::max(count, 1)));
        NASH_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, wd.d, dyd.d, cd.d, dxd.d,
                                                                     static_cast<int>(perf.size()), &got, perf.data()));
        perf.resize(static_cast<std::size_t>(std::max(got, 0)));
        return perf;
      },
      [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(handle, wd.d, dyd.d, cd.d, dxd.d, a, bytes);
      },
      [&](cudnnConvolutionBwdDataAlgo_t a, void* ws, std::size_t bytes) {
        return cudnnConvolutionBackwardData(handle, &one, wd.d, ptr(w), dyd.d, ptr(grad_out), cd.d, a, ws, bytes,
                                            &zero, dxd.d, ptr(grad_in));
      },
      [&] { return problem(grad_out, w, stride, padding, dilation); });
}

void cudnn_conv2d_grad_weight(const Tensor& x, const Tensor& grad_out, Int2 stride, Int2 padding, Int2 dilation,
                              const Tensor& grad_w, cudaStream_t stream) {
  const char* op = "conv2d_grad_weight";
  require_dense_f32(op, "input", x);
  require_dense_f32(op, "grad_out", grad_out);
  require_dense_f32(op, "grad_weight", grad_w);
  Call call(grad_w.device(), stream);
  if (trivial(grad_w, {&x, &grad_out}, stream)) return;
  TensorDesc xd(op, "input", x), dyd(op, "grad_out", grad_out);
  FilterDesc dwd(op, grad_w);
  ConvDesc cd(op, stride, padding, dilation);
  cudnnHandle_t handle = call.pd.handle;
  const float one = 1.f, zero = 0.f;
  run_cached(
      op, "cudnnConvolutionBackwardFilter", call, call.pd.bwd_filter, make_key(x, grad_w, stride, padding, dilation),
      [&] {
        int count = 0, got = 0;
        NASH_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &count));
        std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<std::size_t>(std::max(count, 1)));
        NASH_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, xd.d, dyd.d, cd.d, dwd.d,
                                                                       static_cast<int>(perf.size()), &got,
                                                                       perf.data()));
        perf.resize(static_cast<std::size_t>(std::max(got, 0)));
        return perf;
      },
      [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, xd.d, dyd.d, cd.d, dwd.d, a, bytes);
      },
      [&](cudnnConvolutionBwdFilterAlgo_t a, void* ws, std::size_t bytes) {
        return cudnnConvolutionBackwardFilter(handle, &one, xd.d, ptr(x), dyd.d, ptr(grad_out), cd.d, a, ws, bytes,
                                              &zero, dwd.d, ptr(grad_w));
      },
      [&] { return problem(x, grad_out, stride, padding, dilation); });
}

}  // namespace cuda_impl

#else  // no cuDNN in this build: the engine can be selected but not run

namespace cuda_impl {
namespace {
[[noreturn]] void no_cudnn(const char* op) {
  detail::fail(op, ": the cuDNN convolution engine is selected (set_conv_engine(ConvEngine::CuDNN) or ",
               "NASH_CONV_ENGINE=cudnn) but this build of nash has no cuDNN; select ConvEngine::Nash, or rebuild ",
               "where CMake finds cudnn.h and libcudnn (NASH_CUDNN_ROOT)");
}
}  // namespace
void cudnn_conv2d(const Tensor&, const Tensor&, const Tensor&, Int2, Int2, Int2, const Tensor&, cudaStream_t) {
  no_cudnn("conv2d");
}
void cudnn_conv2d_grad_input(const Tensor&, const Tensor&, Int2, Int2, Int2, const Tensor&, cudaStream_t) {
  no_cudnn("conv2d_grad_input");
}
void cudnn_conv2d_grad_weight(const Tensor&, const Tensor&, Int2, Int2, Int2, const Tensor&, cudaStream_t) {
  no_cudnn("conv2d_grad_weight");
}
}  // namespace cuda_impl

#endif  // NASH_WITH_CUDNN

}  // namespace nash
