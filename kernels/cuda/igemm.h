// nash's tiled GEMM core for CUDA: C = A·B over shared-memory tiles, with A, B and the store given as small
// gather/scatter policies. Convolution forward, both convolution gradients and matmul are instances of it, so the
// implicit-GEMM convolutions never build an im2col buffer.
#pragma once
#include "kernels/cuda/compat.h"

namespace nash {
namespace NASH_CUDA_NS {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kMicroM = 4, kMicroN = 4;
constexpr int kGemmThreads = (kTileM / kMicroM) * (kTileN / kMicroN);  // 256

// C[m, n] = sum over k in this block's K slice of a(m, k) * b(k, n); store(slice, m, n, value).
// grid: (ceil(N / kTileN), ceil(M / kTileM), K slices); each slice covers k_per_slice values of k.
template <class A, class B, class Store>
__global__ void __launch_bounds__(kGemmThreads)
    igemm_kernel(int64_t M, int64_t N, int64_t K, int64_t k_per_slice, A a, B b, Store store) {
  NASH_SHARED(float, As, [kTileK][kTileM + 4]);
  NASH_SHARED(float, Bs, [kTileK][kTileN + 4]);
  const int tid = threadIdx.x;
  const int tm = tid / (kTileN / kMicroN), tn = tid % (kTileN / kMicroN);
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTileM, n0 = static_cast<int64_t>(blockIdx.x) * kTileN;
  const int64_t kb = static_cast<int64_t>(blockIdx.z) * k_per_slice;
  const int64_t ke = kb + k_per_slice < K ? kb + k_per_slice : K;
  float acc[kMicroM][kMicroN];
  for (int i = 0; i < kMicroM; ++i)
    for (int j = 0; j < kMicroN; ++j) acc[i][j] = 0.f;

  for (int64_t k0 = kb; k0 < ke; k0 += kTileK) {
    for (int i = tid; i < kTileM * kTileK; i += kGemmThreads) {
      const int r = i / kTileK, kk = i % kTileK;
      const int64_t gm = m0 + r, gk = k0 + kk;
      As[kk][r] = (gm < M && gk < ke) ? a(gm, gk) : 0.f;
    }
    for (int i = tid; i < kTileK * kTileN; i += kGemmThreads) {
      const int kk = i / kTileN, cc = i % kTileN;
      const int64_t gn = n0 + cc, gk = k0 + kk;
      Bs[kk][cc] = (gn < N && gk < ke) ? b(gk, gn) : 0.f;
    }
    __syncthreads();
NASH_UNROLL
    for (int kk = 0; kk < kTileK; ++kk) {
      float ar[kMicroM], br[kMicroN];
      // Rows and columns of the micro-tile are strided by 16 so neighbouring threads read neighbouring banks.
      for (int i = 0; i < kMicroM; ++i) ar[i] = As[kk][tm + i * (kTileM / kMicroM)];
      for (int j = 0; j < kMicroN; ++j) br[j] = Bs[kk][tn + j * (kTileN / kMicroN)];
      for (int i = 0; i < kMicroM; ++i)
        for (int j = 0; j < kMicroN; ++j) acc[i][j] += ar[i] * br[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < kMicroM; ++i) {
    const int64_t gm = m0 + tm + i * (kTileM / kMicroM);
    if (gm >= M) continue;
    for (int j = 0; j < kMicroN; ++j) {
      const int64_t gn = n0 + tn + j * (kTileN / kMicroN);
      if (gn < N) store(blockIdx.z, gm, gn, acc[i][j]);
    }
  }
}

// Launches the GEMM with `slices` K-slices (1 unless the caller reduces partial results itself).
template <class A, class B, class Store>
void igemm(const char* name, int64_t M, int64_t N, int64_t K, int64_t slices, const A& a, const B& b,
           const Store& store, Stream stream) {
  if (M == 0 || N == 0) return;
  NASH_CHECK((N + kTileN - 1) / kTileN <= 2147483647LL && (M + kTileM - 1) / kTileM <= 65535 && slices <= 65535,
             name, ": GEMM of ", M, "x", N, "x", K, " is too large for one launch");
  int64_t per = (K + slices - 1) / slices;
  per = (per + kTileK - 1) / kTileK * kTileK;
  dim3 grid(static_cast<unsigned>((N + kTileN - 1) / kTileN), static_cast<unsigned>((M + kTileM - 1) / kTileM),
            static_cast<unsigned>(slices));
  launch(name, igemm_kernel<A, B, Store>, grid, dim3(kGemmThreads), 0, stream, M, N, K, per, a, b, store);
}

}  // namespace NASH_CUDA_NS
}  // namespace nash
