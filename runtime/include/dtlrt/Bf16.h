//===- Bf16.h - the bf16 storage type of generated code --------*- C++ -*-===//
//
// bfloat16: f32's sign and exponent with 7 bits of mantissa, stored in 2
// bytes (the upper half of an f32). Values convert to float implicitly, so
// kernels and generated loops load bf16 and compute in float; storing a
// float rounds to nearest even. The layout is oneDNN's and CUDA's bf16, and
// the same struct is the storage type of the generated CUDA kernels (its
// rounding is CUDA's __float2bfloat16_rn for every number).
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_BF16_H
#define DTLRT_BF16_H

#include "dtlrt/Math.h" // DTLRT_HOST_DEVICE, bitsOfFloat

#include <cstdint>
#include <type_traits>

namespace dtlrt {

struct bf16 {
  uint16_t bits;

  bf16() = default;
  DTLRT_HOST_DEVICE bf16(float f) : bits(round(f)) {}
  // Stores the bits themselves: a loop `out[i] = x` then vectorises (a
  // temporary bf16 copied in would not).
  DTLRT_HOST_DEVICE bf16 &operator=(float f) {
    bits = round(f);
    return *this;
  }
  /// Round to nearest even, NaN kept quiet; branch-free (a select), so it
  /// vectorises.
  DTLRT_HOST_DEVICE static uint16_t round(float f) {
    uint32_t u = bitsOfFloat(f);
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    uint32_t quietNaN = (u >> 16) | 0x40u;
    return uint16_t((u & 0x7FFFFFFFu) > 0x7F800000u ? quietNaN : rounded);
  }
  DTLRT_HOST_DEVICE operator float() const { return floatFromBits(uint32_t(bits) << 16); }
};
static_assert(sizeof(bf16) == 2 && std::is_trivially_copyable_v<bf16>);

/// What a kernel computes, accumulates and keeps statistics in for values
/// stored as T: float for bf16, T itself otherwise.
template <typename T> using Acc = std::conditional_t<std::is_same_v<T, bf16>, float, T>;

} // namespace dtlrt

#endif // DTLRT_BF16_H
