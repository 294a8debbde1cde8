//===- cuda-kernels.cu - libdtlrt_cuda's kernels against the hardware -----===//
//
// Kernel-level figures for the GPU target, on gpt2-124M shapes (B*T rows):
// each GEMM through dtlrt::cuda::matmul against cuBLAS called directly
// (cublasGemmEx, same math), as TFLOP/s and a ratio; memory-bound kernels
// as TB/s of the bytes they must move.
//
// usage: build/bin/dtl-bench-cuda-kernels [--rows 32768] [--bf16]
//
//===----------------------------------------------------------------------===//

#include "dtlrt/Cuda.h"
#include "dtlrt/RankDiscovery.h"

#include <cublas_v2.h>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

namespace {

using dtlrt::cuda::check;

/// Milliseconds per call of `fn` on the compute stream (median-free: the
/// mean of `repeats` calls after a warm-up, timed by events).
double timeMs(const std::function<void()> &fn, int repeats = 20) {
  cudaStream_t s = dtlrt::cuda::stream();
  for (int i = 0; i < 3; ++i)
    fn();
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  check(cudaEventRecord(start, s), "record");
  for (int i = 0; i < repeats; ++i)
    fn();
  check(cudaEventRecord(stop, s), "record");
  check(cudaEventSynchronize(stop), "sync");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
  return ms / repeats;
}

float *deviceFloats(int64_t n) {
  float *p = nullptr;
  check(cudaMalloc(&p, n * sizeof(float)), "cudaMalloc");
  check(cudaMemset(p, 0, n * sizeof(float)), "cudaMemset");
  return p;
}

} // namespace

int main(int argc, char **argv) {
  int64_t rows = 32768; // B = 32, T = 1024
  bool bf16 = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc)
      rows = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--bf16"))
      bf16 = true;
  }
  MPI_Init(&argc, &argv);
  dtlrt::Context ctx({1}, 0);
  dtlrt::Device *device =
      dtlrt::cuda::device(bf16 ? dtlrt::cuda::GemmMath::BF16 : dtlrt::cuda::GemmMath::F32);
  std::string error = device->setUp(dtlrt::LaunchInfo{}, ctx, 0);
  if (!error.empty()) {
    std::printf("skipped: %s\n", error.c_str());
    MPI_Finalize();
    return 0;
  }
  std::printf("%s, %lld rows, %s GEMMs\n", device->describe().c_str(), (long long)rows,
              bf16 ? "bf16" : "f32");

  cublasHandle_t blas;
  cublasCreate(&blas);
  cublasSetStream(blas, dtlrt::cuda::stream());
  cublasSetMathMode(blas, bf16 ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH);
  cublasComputeType_t compute = bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;

  struct Shape {
    const char *name;
    int64_t k, n;
    bool tb;
  } shapes[] = {{"qkv/out proj [rows,768]x[768,768]", 768, 768, false},
                {"mlp fc [rows,768]x[768,3072]", 768, 3072, false},
                {"mlp proj [rows,3072]x[3072,768]", 3072, 768, false},
                {"lm head [rows,768]x[50304,768]^T", 768, 50304, true}};
  std::printf("GEMM | dtl TFLOP/s | cuBLAS TFLOP/s | dtl/cuBLAS\n");
  for (const Shape &s : shapes) {
    float *a = deviceFloats(rows * s.k), *b = deviceFloats(s.k * s.n),
          *c = deviceFloats(rows * s.n), *bias = deviceFloats(s.n);
    double flop = 2.0 * rows * s.n * s.k;
    double dtl = timeMs([&] { dtlrt::cuda::matmul(false, s.tb, rows, s.n, s.k, a, b, bias, c); });
    const float one = 1, zero = 0;
    double ref = timeMs([&] {
      cublasGemmEx(blas, s.tb ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, int(s.n), int(rows),
                   int(s.k), &one, b, CUDA_R_32F, int(s.tb ? s.k : s.n), a, CUDA_R_32F, int(s.k),
                   &zero, c, CUDA_R_32F, int(s.n), compute, CUBLAS_GEMM_DEFAULT);
    });
    std::printf("%s | %.1f | %.1f | %.3f\n", s.name, flop / dtl / 1e9, flop / ref / 1e9, ref / dtl);
    cudaFree(a), cudaFree(b), cudaFree(c), cudaFree(bias);
  }

  std::printf("memory-bound kernel | ms | TB/s\n");
  auto report = [](const char *name, double ms, double bytes) {
    std::printf("%s | %.3f | %.2f\n", name, ms, bytes / ms / 1e9);
  };
  const int64_t channels = 768, n = rows * channels;
  float *x = deviceFloats(n), *y = deviceFloats(n), *g = deviceFloats(n),
        *w = deviceFloats(channels), *b = deviceFloats(channels), *mean = deviceFloats(rows),
        *rstd = deviceFloats(rows);
  report("layerNorm [rows,768]",
         timeMs([&] { dtlrt::cuda::layerNorm(x, w, b, 1e-5, y, mean, rstd, rows, channels); }),
         2.0 * n * 4);
  report("layerNormGradInput [rows,768]",
         timeMs([&] { dtlrt::cuda::layerNormGradInput(x, w, mean, rstd, g, y, rows, channels); }),
         3.0 * n * 4);
  report("softmax [rows,768]", timeMs([&] { dtlrt::cuda::softmax(x, y, rows, channels); }),
         2.0 * n * 4);
  const int64_t params = 124475904; // gpt2-124M with the padded vocabulary
  float *p = deviceFloats(params), *pg = deviceFloats(params), *m = deviceFloats(params),
        *v = deviceFloats(params), *scalars = deviceFloats(3);
  const float lrStep[3] = {1e-4f, 1.f, 1.f}; // lr, step, gradient scale
  check(cudaMemcpy(scalars, lrStep, sizeof lrStep, cudaMemcpyHostToDevice), "copy");
  report("adamwUpdate 124M params", timeMs([&] {
           dtlrt::cuda::adamwUpdate(p, pg, m, v, scalars, scalars + 1, scalars + 2, 0.9, 0.95, 1e-8,
                                    0.1, p, m, v, params);
         }),
         7.0 * params * 4);
  const int64_t copyShape[] = {rows, channels}, copyStrides[] = {channels, 1};
  report("broadcast (copy) [rows,768]",
         timeMs([&] { dtlrt::cuda::broadcast(x, y, copyShape, copyStrides, 2); }), 2.0 * n * 4);
  MPI_Finalize();
  return 0;
}
