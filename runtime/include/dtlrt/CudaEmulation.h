//===- CudaEmulation.h - generated CUDA code run on the host ---*- C++ -*-===//
//
// dtlc --target=cuda-emulation compiles the CUDA target's generated source
// as host C++ against this header instead of libdtlrt_cuda: each kernel's
// grid runs block by block and thread by thread, library calls go to
// libdtlrt's CPU kernels, and a collective runs only when the compute
// stream would wait for it (or at the end of the step), reading its input
// then. The "device" memory is host memory apart from the training loop's
// own copies, so the loop's uploads and downloads are exercised too. So the generated code (fused
// kernels, four-element loads, views, the buffer plan's lifetimes under asynchronous collectives)
// is tested on any machine against the CPU target; the real GPU kernels are not (those are tested
// against the CPU ones by dtlrt-cuda-unittests on a GPU).
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_CUDAEMULATION_H
#define DTLRT_CUDAEMULATION_H

#include "dtlrt/Context.h"
#include "dtlrt/Cpu.h"
#include "dtlrt/CudaCommon.h"
#include "dtlrt/Device.h"
#include "dtlrt/Kernels.h"
#include "dtlrt/Runtime.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
inline dim3 blockIdx, threadIdx, blockDim, gridDim;

namespace dtlrt::cuda {

/// Runs `kernel` over the grid for `n` items, one (block, thread) at a time.
template <typename Kernel> struct EmulatedLaunch {
  Kernel *kernel;
  int64_t n;
  template <typename... Args> void operator()(Args... args) const {
    gridDim.x = blocksFor(n);
    blockDim.x = kBlock;
    for (blockIdx.x = 0; blockIdx.x < gridDim.x; ++blockIdx.x)
      for (threadIdx.x = 0; threadIdx.x < blockDim.x; ++threadIdx.x)
        kernel(args...);
  }
};
#define DTLRT_CUDA_LAUNCH(kernel, n)                                                               \
  dtlrt::cuda::EmulatedLaunch<decltype(kernel)> { kernel, n }

inline void checkLaunch(const char *) {}

/// A Device whose memory is separate host memory, zeroed like the GPU's.
class EmulatedDevice final : public Device {
public:
  std::string setUp(const LaunchInfo &, Context &, int) override { return ""; }
  std::string describe() const override { return "emulated GPU (host memory)"; }
  void *allocate(size_t bytes) override {
    allocated_ += int64_t(bytes);
    return std::calloc(bytes ? bytes : 1, 1);
  }
  void upload(void *device, const void *host, size_t bytes) override {
    std::memcpy(device, host, bytes);
  }
  void download(void *host, const void *device, size_t bytes) override {
    std::memcpy(host, device, bytes);
  }
  void run(StepFn fn, Context &ctx, const std::vector<void *> &args,
           const std::vector<void *> &results) override {
    fn(ctx, args.data(), results.data());
  }
  int64_t allocatedBytes() const override { return allocated_; }

private:
  int64_t allocated_ = 0;
};

inline Device *device(GemmMath) {
  static EmulatedDevice emulated;
  return &emulated;
}
inline char *arena(int64_t bytes) { return stepBuffer<char>(bytes); }

// The library calls take the CPU kernels' arguments (dtlrt/Cpu.h).
using dtlrt::accumulate;
using dtlrt::adamwUpdate;
using dtlrt::argmaxPartial;
using dtlrt::broadcast;
using dtlrt::causalAttention;
using dtlrt::causalAttentionGrad;
using dtlrt::correct;
using dtlrt::correctCombine;
using dtlrt::crossEntropy;
using dtlrt::crossEntropyCombine;
using dtlrt::crossEntropyGrad;
using dtlrt::crossEntropyPartial;
using dtlrt::dropout;
using dtlrt::embedding;
using dtlrt::embeddingGrad;
using dtlrt::layerNorm;
using dtlrt::layerNormGradInput;
using dtlrt::layerNormGradParams;
using dtlrt::matmul;
using dtlrt::place;
using dtlrt::reduceSum;
using dtlrt::sgdUpdate;
using dtlrt::softmax;
using dtlrt::softmaxGrad;
inline void copy(const void *in, void *out, int64_t bytes) { std::memcpy(out, in, bytes); }

/// Collectives queued and not yet awaited, by slot.
inline std::map<int, std::function<void()>> pendingCollectives;

inline void waitFor(int slot) {
  auto it = pendingCollectives.find(slot);
  if (it == pendingCollectives.end())
    return;
  it->second();
  pendingCollectives.erase(it);
}
inline void joinAll() {
  while (!pendingCollectives.empty())
    waitFor(pendingCollectives.begin()->first);
}

template <typename T>
void allReduceSum(Context &ctx, const T *in, T *out, int64_t count, const Axes &axes, int slot,
                  const char *) {
  pendingCollectives[slot] = [&ctx, in, out, count, axes] {
    std::memcpy(out, in, count * sizeof(T));
    ctx.allReduceSum(out, count, axes);
  };
}
template <typename T>
void allGather(Context &ctx, const T *in, T *out, const std::vector<int64_t> &localShape, int dim,
               const Axes &axes, int slot, const char *) {
  pendingCollectives[slot] = [&ctx, in, out, localShape, dim, axes] {
    ctx.allGather(in, out, localShape, dim, axes);
  };
}
template <typename T>
void reduceScatterSum(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape,
                      int dim, const Axes &axes, int slot, const char *) {
  pendingCollectives[slot] = [&ctx, in, out, inShape, dim, axes] {
    ctx.reduceScatterSum(in, out, inShape, dim, axes);
  };
}
template <typename T>
void allToAll(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape, int splitDim,
              int concatDim, const Axes &axes, int slot, const char *) {
  pendingCollectives[slot] = [&ctx, in, out, inShape, splitDim, concatDim, axes] {
    ctx.allToAll(in, out, inShape, splitDim, concatDim, axes);
  };
}
// Point to point runs at once, in program order, as on the CPU target:
// deferred to its wait, a send could be queued behind a receive its peer
// needs first.
using dtlrt::recv;
using dtlrt::send;
template <typename T>
void allSlice(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape, int dim,
              const Axes &axes) {
  ctx.allSlice(in, out, inShape, dim, axes);
}

} // namespace dtlrt::cuda

#endif // DTLRT_CUDAEMULATION_H
