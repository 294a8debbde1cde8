//===- Math.h - exp, tanh and GELU shared by the CPU and CUDA kernels -*- C++ -*-===//
//
// Header-only and usable from CUDA device code, so the generated CPU loops,
// the CPU kernels and the generated CUDA kernels compute GELU and softmax
// exponentials with the same formulas: a step on the GPU (or its host
// emulation) then differs from the CPU's only by summation order, which
// matters most in bf16, where one ulp of f32 can flip a rounding.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_MATH_H
#define DTLRT_MATH_H

#include "dtlrt/Hash.h" // DTLRT_HOST_DEVICE

#include <cmath>
#include <cstdint>
#include <cstring>

namespace dtlrt {

/// The float whose bits are `bits` (and back), on the host and the device.
DTLRT_HOST_DEVICE inline float floatFromBits(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}
DTLRT_HOST_DEVICE inline uint32_t bitsOfFloat(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
#endif
}

// e^x for float without libm: x = n ln2 + r, |r| <= ln2 / 2, e^r by a
// degree-6 polynomial (relative error below 2e-7), 2^n through the exponent
// bits. Branch-free, so loops calling it vectorise (libm's expf does not
// without -ffast-math). Doubles use std::exp.
DTLRT_HOST_DEVICE inline float fastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round to nearest by the 1.5 * 2^23 trick (vectorises, unlike roundf).
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693145751953125f - n * 1.428606765330187045e-06f;
  float p =
      1.0f +
      r * (1.0f + r * (0.5f + r * (0.16666667f +
                                   r * (0.041666668f + r * (0.0083333338f + r * 0.0013888889f)))));
  return p * floatFromBits(uint32_t((int32_t(n) + 127) << 23));
}
inline double fastExp(double x) { return std::exp(x); }

// tanh(u) = sign(u) (1 - 2 / (e^{2|u|} + 1)).
DTLRT_HOST_DEVICE inline float fastTanh(float u) {
  float a = u < 0 ? -u : u;
  float t = 1.0f - 2.0f / (fastExp(2.0f * a) + 1.0f);
  return u < 0 ? -t : t;
}
inline double fastTanh(double u) { return std::tanh(u); }

// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2's form;
// inline so the generated elementwise loops vectorise.
template <typename T> DTLRT_HOST_DEVICE inline T gelu(T x) {
  const T s = T(0.7978845608028654), c = T(0.044715);
  return T(0.5) * x * (T(1) + fastTanh(s * (x + c * x * x * x)));
}

// g * d gelu(x) / dx.
template <typename T> DTLRT_HOST_DEVICE inline T geluGrad(T x, T g) {
  const T s = T(0.7978845608028654), c = T(0.044715);
  T u = s * (x + c * x * x * x), th = fastTanh(u);
  T sech2 = T(1) - th * th;
  return g * (T(0.5) * (T(1) + th) + T(0.5) * x * sech2 * s * (T(1) + T(3) * c * x * x));
}

} // namespace dtlrt

#endif // DTLRT_MATH_H
