//===- CudaCommon.h - launch shape and math of generated CUDA kernels -*- C++ -*-===//
//
// What the generated kernels use besides their own code, shared by the real
// libdtlrt_cuda (dtlrt/Cuda.h) and its host emulation (dtlrt/CudaEmulation.h).
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_CUDACOMMON_H
#define DTLRT_CUDACOMMON_H

#include "dtlrt/Hash.h" // DTLRT_HOST_DEVICE

#include <cmath>
#include <cstdint>

namespace dtlrt::cuda {

/// How GEMMs multiply: f32 throughout, or bf16 products on tensor cores
/// with f32 accumulation (operands rounded to bf16, storage stays f32).
enum class GemmMath { F32, BF16 };

/// Threads per block and blocks for an elementwise kernel over `n` items
/// (grid-stride loops cover the rest).
constexpr int kBlock = 256;
inline unsigned blocksFor(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  return unsigned(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

/// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as dtlrt/Kernels.h.
DTLRT_HOST_DEVICE inline float gelu(float x) {
  const float s = 0.7978845608028654f, c = 0.044715f;
  return 0.5f * x * (1.f + tanhf(s * (x + c * x * x * x)));
}

/// g * d gelu(x) / dx.
DTLRT_HOST_DEVICE inline float geluGrad(float x, float g) {
  const float s = 0.7978845608028654f, c = 0.044715f;
  float th = tanhf(s * (x + c * x * x * x));
  return g * (0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * s * (1.f + 3.f * c * x * x));
}

/// x - x is 0 exactly when x is finite (inf - inf and NaN - NaN are NaN).
DTLRT_HOST_DEVICE inline bool isFinite(float x) { return x - x == 0.f; }

/// dtl.grad_scale, as dtlrt::gradScale in dtlrt/Kernels.h.
DTLRT_HOST_DEVICE inline float gradScale(float loss, float norm, float maxNorm) {
  if (!isFinite(loss) || !isFinite(norm))
    return nanf("");
  if (maxNorm <= 0.f)
    return 1.f;
  float scale = maxNorm / (norm + 1e-6f);
  return scale < 1.f ? scale : 1.f;
}

} // namespace dtlrt::cuda

#endif // DTLRT_CUDACOMMON_H
