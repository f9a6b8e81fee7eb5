// nash_bench_elementwise: memory-bound ops on float32 (Google Benchmark): add, mul, relu, leaky_relu (slope 0.2 on
// inputs of random sign: a select, not a max) and a full sum reduction, each beside a clone of the same bytes
// (read once, written once into a new tensor: the copy bandwidth the others, which also allocate their result, can
// at best reach). Two more copies without an allocation give the floor: copy_ (nash's Tensor::copy_ into a tensor
// allocated once) and, on the CPU only, memcpy (std::memcpy, in one chunk per nash thread from 1 MiB up, into a
// buffer written once before timing: the memory system's copy bandwidth without the page faults of fresh
// allocations). Sizes are bytes per input tensor: 1 KiB, 64 KiB, 1 MiB, 16 MiB, 256 MiB; the CPU cases stop at
// --cpu_max_mib (64 by default). Counter bytes/s: the bytes an op must move (add, mul: 2 reads + 1 write; relu,
// leaky_relu, clone, copy_, memcpy: 1 read + 1 write; sum: 1 read), divided by the time.
//
// The overhead family times what a call costs when there is almost no data, the floor of every small op and of a
// small model's step (host work: dispatch, result allocation, autograd records; on CUDA plus the launches, timed
// with events from before the host call): overhead/add (4 floats, no autograd), overhead/add_sum_backward (add of
// a 4-float leaf that requires grad, sum, backward) and overhead/adam_step (Adam over 19 tensors of 4 floats: the
// tensor count of the DCGAN's, so its CUDA row is the host part of nash_gpu_bench's `adam step`).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "micro.h"

using namespace nash;
namespace {

enum class Op { Clone, CopyInto, Memcpy, Add, Mul, Relu, LeakyRelu, Sum };

const char* op_name(Op op) {
  switch (op) {
    case Op::Clone: return "clone";
    case Op::CopyInto: return "copy_";
    case Op::Memcpy: return "memcpy";
    case Op::Add: return "add";
    case Op::Mul: return "mul";
    case Op::Relu: return "relu";
    case Op::LeakyRelu: return "leaky_relu";
    case Op::Sum: return "sum";
  }
  return "?";
}

// Tensors an op reads and writes, in units of the input's size.
double traffic(Op op) { return op == Op::Add || op == Op::Mul ? 3.0 : op == Op::Sum ? 1.0 : 2.0; }

std::string size_name(int64_t bytes) {
  return bytes >= (int64_t(1) << 20) ? std::to_string(bytes >> 20) + "MiB" : std::to_string(bytes >> 10) + "KiB";
}

void BM_Elementwise(benchmark::State& state, Op op, int64_t bytes, bool on_cuda) {
  const Device dev = on_cuda ? Device::cuda() : Device::cpu();
  if (!nash_bench::usable(state, dev)) return;
  NoGradGuard no_grad;
  manual_seed(0);
  const int64_t n = bytes / 4;
  const std::vector<Tensor> a = nash_bench::rotating_randn({n}, dev);
  const std::vector<Tensor> b =
      op == Op::Add || op == Op::Mul ? nash_bench::rotating_randn({n}, dev) : std::vector<Tensor>();
  // The destination of copy_ and memcpy, allocated and written once (its pages are mapped before timing).
  Tensor dst = op == Op::CopyInto || op == Op::Memcpy ? a[0].clone() : Tensor();
  const int threads = std::max(1, get_num_threads());
  nash_bench::timed_loop(state, dev, [&](int k) {
    switch (op) {
      case Op::Clone: a[k].clone(); break;
      case Op::CopyInto: dst.copy_(a[k]); break;
      case Op::Memcpy: {
        const char* src = static_cast<const char*>(a[k].raw_data());
        char* out = static_cast<char*>(dst.raw_data());
        const int team = bytes >= (int64_t(1) << 20) ? threads : 1;  // below 1 MiB a team costs more than it brings
        const int64_t chunk = (bytes + team - 1) / team;
#pragma omp parallel for num_threads(team) schedule(static)
        for (int t = 0; t < team; ++t) {
          const int64_t lo = std::min<int64_t>(bytes, t * chunk), hi = std::min<int64_t>(bytes, lo + chunk);
          if (hi > lo) std::memcpy(out + lo, src + lo, static_cast<std::size_t>(hi - lo));
        }
        break;
      }
      case Op::Add: add(a[k], b[k]); break;
      case Op::Mul: mul(a[k], b[k]); break;
      case Op::Relu: relu(a[k]); break;
      case Op::LeakyRelu: leaky_relu(a[k], 0.2); break;
      case Op::Sum: sum(a[k]); break;
    }
  });
  state.counters["bytes/s"] = nash_bench::rate(traffic(op) * double(bytes));
}

enum class Overhead { Add, AddSumBackward, AdamStep };

void BM_Overhead(benchmark::State& state, Overhead what, bool on_cuda) {
  const Device dev = on_cuda ? Device::cuda() : Device::cpu();
  if (!nash_bench::usable(state, dev)) return;
  manual_seed(0);
  std::vector<Tensor> a, b, leaves, params;
  for (int k = 0; k < nash_bench::kSets; ++k) {
    a.push_back(randn({4}, DType::Float32, dev));
    b.push_back(randn({4}, DType::Float32, dev));
    leaves.push_back(randn({4}, DType::Float32, dev).requires_grad_());
  }
  for (int k = 0; k < 19; ++k) {
    params.push_back(randn({4}, DType::Float32, dev).requires_grad_());
    params.back().set_grad(randn({4}, DType::Float32, dev));
  }
  optim::Adam adam(params);
  nash_bench::timed_loop(state, dev, [&](int k) {
    switch (what) {
      case Overhead::Add: {
        NoGradGuard no_grad;
        add(a[k], b[k]);
        break;
      }
      case Overhead::AddSumBackward: sum(add(leaves[k], b[k])).backward(); break;
      case Overhead::AdamStep: adam.step(); break;
    }
  });
}

constexpr const char* kFlags =
    "  --cpu_max_mib=N  largest CPU case in MiB per input tensor (default 64: the 256 MiB case runs on CUDA only)";

void register_all(int* argc, char** argv) {
  const int64_t cpu_max_mib = nash_bench::take_flag(argc, argv, "cpu_max_mib", 64);
  for (Op op : {Op::Clone, Op::CopyInto, Op::Memcpy, Op::Add, Op::Mul, Op::Relu, Op::LeakyRelu, Op::Sum})
    for (int64_t bytes : {int64_t(1) << 10, int64_t(64) << 10, int64_t(1) << 20, int64_t(16) << 20,
                          int64_t(256) << 20})
      for (bool on_cuda : {false, true}) {
        if (!on_cuda && bytes > (cpu_max_mib << 20)) continue;
        if (on_cuda && op == Op::Memcpy) continue;  // nash_gpu_bench times cudaMemcpy
        const std::string name =
            std::string("elementwise/") + op_name(op) + "/" + size_name(bytes) + (on_cuda ? "/cuda" : "/cpu");
        benchmark::RegisterBenchmark(name.c_str(), BM_Elementwise, op, bytes, on_cuda)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
  const std::pair<Overhead, const char*> overheads[] = {
      {Overhead::Add, "add"}, {Overhead::AddSumBackward, "add_sum_backward"}, {Overhead::AdamStep, "adam_step"}};
  for (const auto& o : overheads)
    for (bool on_cuda : {false, true})
      benchmark::RegisterBenchmark((std::string("overhead/") + o.second + (on_cuda ? "/cuda" : "/cpu")).c_str(),
                                   BM_Overhead, o.first, on_cuda)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) { return nash_bench::run_main(argc, argv, kFlags, register_all); }
