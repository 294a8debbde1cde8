//===- Hash.h - the counter-based hash behind every random draw -*- C++ -*-===//
//
// Header-only and usable from CUDA device code, so the GPU target draws the
// same dropout masks (and could draw the same inits) as the CPU target.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_HASH_H
#define DTLRT_HASH_H

#include <cstdint>

#ifdef __CUDACC__
#define DTLRT_HOST_DEVICE __host__ __device__
#else
#define DTLRT_HOST_DEVICE
#endif

namespace dtlrt {

/// The hash state for `seed` before any character of the stream name.
DTLRT_HOST_DEVICE inline uint64_t hashStart(uint64_t seed) { return seed ^ 0x9E3779B97F4A7C15ull; }

/// Folds one character of the stream name into the state (FNV-1a step).
DTLRT_HOST_DEVICE inline uint64_t hashChar(uint64_t h, unsigned char c) {
  return (h ^ c) * 0x100000001B3ull;
}

/// Folds the decimal digits of `n >= 0`, most significant first.
DTLRT_HOST_DEVICE inline uint64_t hashDecimal(uint64_t h, int64_t n) {
  char digits[20];
  int count = 0;
  do {
    digits[count++] = char('0' + n % 10);
    n /= 10;
  } while (n > 0);
  while (count > 0)
    h = hashChar(h, (unsigned char)digits[--count]);
  return h;
}

/// The value at `index` of the stream whose state is `h` (splitmix64's
/// finaliser over the combined key).
DTLRT_HOST_DEVICE inline uint64_t hashAt(uint64_t h, uint64_t index) {
  uint64_t z = h + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// A uniform double in [0, 1) from a hash value (its top 53 bits).
DTLRT_HOST_DEVICE inline double unitInterval(uint64_t hash) {
  return (hash >> 11) * (1.0 / 9007199254740992.0);
}

} // namespace dtlrt

#endif // DTLRT_HASH_H
