//===- Cpu.h - what a program generated for --target=cpu calls --*- C++ -*-===//
//
// The CPU twin of dtlrt/Cuda.h: the same calls with the same arguments, so
// one printer writes both targets' step functions. Kernels are libdtlrt's
// (dtlrt/Kernels.h); collectives run on the rank's Context through MPI and
// are complete when they return, so there is nothing to wait for.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_CPU_H
#define DTLRT_CPU_H

#include "dtlrt/Context.h"
#include "dtlrt/Kernels.h"
#include "dtlrt/Runtime.h"

#include <cstring>
#include <vector>

namespace dtlrt {

/// A zeroed arena of `bytes` for one step function's values, made on its
/// first call; it lives as long as the program (counted in stepBufferBytes).
inline char *arena(int64_t bytes) { return stepBuffer<char>(bytes); }

inline void copy(const void *in, void *out, int64_t bytes) { std::memcpy(out, in, bytes); }

// Collectives. `slot` and `what` number and describe the collective for the
// CUDA target's asynchronous waits and error messages; here they are unused.

template <typename T>
void allReduceSum(Context &ctx, const T *in, T *out, int64_t count, const Axes &axes, int,
                  const char *) {
  if (in != out)
    std::memcpy(out, in, count * sizeof(T));
  ctx.allReduceSum(out, count, axes);
}

template <typename T>
void allGather(Context &ctx, const T *in, T *out, const std::vector<int64_t> &localShape, int dim,
               const Axes &axes, int, const char *) {
  ctx.allGather(in, out, localShape, dim, axes);
}

template <typename T>
void reduceScatterSum(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape,
                      int dim, const Axes &axes, int, const char *) {
  ctx.reduceScatterSum(in, out, inShape, dim, axes);
}

template <typename T>
void allToAll(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape, int splitDim,
              int concatDim, const Axes &axes, int, const char *) {
  ctx.allToAll(in, out, inShape, splitDim, concatDim, axes);
}

template <typename T>
void allSlice(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape, int dim,
              const Axes &axes) {
  ctx.allSlice(in, out, inShape, dim, axes);
}

template <typename T>
void send(Context &ctx, const T *data, int64_t count, int peer, const Axes &axes, int,
          const char *) {
  ctx.send(data, count, peer, axes);
}

template <typename T>
void recv(Context &ctx, T *data, int64_t count, int peer, const Axes &axes, int, const char *) {
  ctx.recv(data, count, peer, axes);
}

/// Collectives complete when they return.
inline void waitFor(int) {}

} // namespace dtlrt

#endif // DTLRT_CPU_H
