//===- Gpu.h - the process's GPU state (private to libdtlrt_cuda) -*- C++ -*-===//

#ifndef DTLRT_CUDA_GPU_H
#define DTLRT_CUDA_GPU_H

#include "dtlrt/Cuda.h"
#include "dtlrt/Data.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <nccl.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dtlrt::cuda {

/// Failure codes kernels leave in the device's failure word.
constexpr int64_t kBadLabel = 1, kBadTokenId = 2;

/// Scratch buffers for kernels on the compute stream (one of each kind is
/// in use at a time).
enum class Scratch { Attention, Partials, Ones, Sums, Count };

class Gpu {
public:
  static Gpu &get();

  std::string setUp(const LaunchInfo &launch, Context &ctx, int rank);
  void setMath(GemmMath math) { math_ = math; }
  GemmMath math() const { return math_; }
  const std::string &description() const { return description_; }

  void *allocate(size_t bytes);
  int64_t allocatedBytes() const { return allocated_; }
  void upload(void *device, const void *host, size_t bytes);
  void download(void *host, const void *device, size_t bytes);
  void run(StepFn fn, Context &ctx, const std::vector<void *> &args,
           const std::vector<void *> &results);

  cudaStream_t computeStream() const { return compute_; }
  cublasLtHandle_t lt() const { return lt_; }
  cublasHandle_t blas() const { return blas_; }
  void *workspace() const { return workspace_; }
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;
  /// Where kernels record a failure: {code, value}.
  int64_t *failureWord() const { return failure_; }

  /// A buffer of at least `bytes` for a kernel's temporaries.
  void *scratch(Scratch kind, size_t bytes);
  /// The staging buffer of collective `slot`.
  void *slotScratch(int slot, size_t bytes);

  ncclComm_t communicator(Context &ctx, const Axes &axes);
  /// The communication stream, after the compute stream's work so far.
  cudaStream_t beginCollective(int slot, const char *what);
  void endCollective(int slot);
  void waitFor(int slot);
  void joinAll();

  [[noreturn]] void fail(const std::string &message);
  void checkNccl(ncclResult_t status, const char *what);
  void checkBlas(cublasStatus_t status, const char *what);

private:
  Gpu() = default;
  std::string selectDevice(const LaunchInfo &launch);
  void synchronize();
  cudaEvent_t slotEvent(int slot);

  /// A buffer that grows to the largest size asked of it.
  struct Grown {
    size_t size = 0;
    void *buffer = nullptr;
  };
  void *grow(Grown &grown, size_t bytes);

  struct Graph {
    int64_t calls = 0;
    cudaGraphExec_t exec = nullptr;
  };

  int rank_ = 0, device_ = 0, visibleDevices_ = 0;
  std::string uuid_;
  GemmMath math_ = GemmMath::F32;
  std::string description_;
  cudaStream_t compute_ = nullptr, comm_ = nullptr;
  cudaEvent_t computeReady_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  void *workspace_ = nullptr;
  int64_t *failure_ = nullptr;
  int64_t allocated_ = 0;
  bool graphs_ = true;
  Grown scratch_[int(Scratch::Count)];
  std::map<int, Grown> slotScratch_;
  std::map<int, cudaEvent_t> slotEvents_;
  std::vector<int> pending_;        ///< collectives queued by the running step function
  std::string lastQueued_ = "none"; ///< the last collective queued, for errors
  std::map<Axes, ncclComm_t> nccl_;
  std::map<std::pair<StepFn, std::vector<void *>>, Graph> steps_;
};

} // namespace dtlrt::cuda

#endif // DTLRT_CUDA_GPU_H
