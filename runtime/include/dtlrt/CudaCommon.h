//===- CudaCommon.h - launch shape and math of generated CUDA kernels -*- C++ -*-===//
//
// What the generated kernels use besides their own code, shared by the real
// libdtlrt_cuda (dtlrt/Cuda.h) and its host emulation (dtlrt/CudaEmulation.h).
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_CUDACOMMON_H
#define DTLRT_CUDACOMMON_H

#include "dtlrt/Bf16.h"
#include "dtlrt/Hash.h" // DTLRT_HOST_DEVICE
#include "dtlrt/Math.h"

#include <cmath>
#include <cstdint>

namespace dtlrt::cuda {

/// How GEMMs of f32 operands multiply: f32 throughout, or bf16 products on
/// tensor cores with f32 accumulation (precision = bf16, for the GEMMs
/// whose operands stay f32; bf16 operands are bf16 GEMMs either way).
enum class GemmMath { F32, BF16 };

/// Four consecutive elements a generated kernel loads or stores at once
/// (float4's 16 bytes for f32, 8 bytes for bf16).
template <typename T> struct alignas(4 * sizeof(T)) Lanes4 {
  T x, y, z, w;
};

/// Threads per block and blocks for an elementwise kernel over `n` items
/// (grid-stride loops cover the rest).
constexpr int kBlock = 256;
inline unsigned blocksFor(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  return unsigned(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

// The CPU kernels' GELU, so both targets round alike.
using dtlrt::gelu;
using dtlrt::geluGrad;

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
