//===- Gpu.cu - the CUDA device: streams, memory, graphs, NCCL, watchdog --===//
//
// One Gpu per process. It picks the rank's GPU (local rank % devices, never
// two ranks on one), owns the compute and communication streams, makes one
// NCCL communicator per mesh axis group (unique id broadcast over that
// group's MPI communicator), replays each step as a CUDA graph from its
// second call on, and waits for a step watching NCCL's errors: a collective
// that fails ends every rank with a message. One that hangs (a peer
// stopped) is the watchdog's (dtlrt/Watchdog.h): the wait is one activity
// under its deadline, named by the last collective queued.
//
//===----------------------------------------------------------------------===//

#include "Gpu.h"

#include "dtlrt/Watchdog.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

namespace dtlrt::cuda {

Gpu &Gpu::get() {
  static Gpu gpu;
  return gpu;
}

[[noreturn]] void Gpu::fail(const std::string &message) {
  std::fprintf(stderr, "error: rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  // torchrun's agent reports the first failure from this file.
  if (const char *path = std::getenv("TORCHELASTIC_ERROR_FILE")) {
    std::ofstream out(path);
    std::string escaped;
    for (char c : message)
      escaped += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    out << "{\"message\": {\"message\": \"rank " << rank_ << ": " << escaped
        << "\", \"extraInfo\": {\"timestamp\": \"" << std::time(nullptr) << "\"}}}\n";
  }
  for (auto &[axes, comm] : nccl_)
    ncclCommAbort(comm);
  nccl_.clear();
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

void check(cudaError_t status, const char *what) {
  if (status != cudaSuccess)
    Gpu::get().fail(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

void Gpu::checkNccl(ncclResult_t status, const char *what) {
  if (status == ncclSuccess || status == ncclInProgress)
    return;
  fail(std::string("NCCL: ") + what + ": " + ncclGetErrorString(status) + " (" +
       ncclGetLastError(nullptr) + ")");
}

void Gpu::checkBlas(cublasStatus_t status, const char *what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(std::string("cuBLAS: ") + what + ": " + cublasGetStatusString(status));
}

/// This rank's GPU: local rank % the devices it sees; "" or what is wrong.
std::string Gpu::selectDevice(const LaunchInfo &launch) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0)
    return std::string("no CUDA device (") +
           (status != cudaSuccess ? cudaGetErrorString(status) : "none found") +
           "); this program was compiled with --target=cuda, recompile with --target=cpu to "
           "run on the host";
  device_ = launch.localRank % count;
  check(cudaSetDevice(device_), "cudaSetDevice");
  cudaDeviceProp props;
  check(cudaGetDeviceProperties(&props, device_), "cudaGetDeviceProperties");
  char line[256];
  std::snprintf(line, sizeof line, "GPU %d: %s (sm_%d%d, %.0f GiB)", device_, props.name,
                props.major, props.minor, props.totalGlobalMem / double(1 << 30));
  description_ = line;
  visibleDevices_ = count;
  for (unsigned char byte : props.uuid.bytes) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", byte);
    uuid_ += hex;
  }
  return "";
}

std::string Gpu::setUp(const LaunchInfo &launch, Context &, int rank) {
  rank_ = rank;
  std::string error = selectDevice(launch);
  // Two ranks on one GPU (same host, same device UUID) would fight over its
  // memory and serialise; every rank takes part in the check, even one
  // without a device, so none waits alone.
  constexpr int kKeyBytes = 128;
  char key[kKeyBytes] = {}, host[64] = {};
  gethostname(host, sizeof host - 1);
  if (error.empty())
    std::snprintf(key, sizeof key, "%s/%s", host, uuid_.c_str());
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  std::vector<char> keys(size_t(world) * kKeyBytes);
  MPI_Allgather(key, kKeyBytes, MPI_CHAR, keys.data(), kKeyBytes, MPI_CHAR, MPI_COMM_WORLD);
  for (int other = 0; other < world && error.empty(); ++other)
    if (other != rank && std::strncmp(&keys[size_t(other) * kKeyBytes], key, kKeyBytes) == 0)
      error = "ranks " + std::to_string(std::min(rank, other)) + " and " +
              std::to_string(std::max(rank, other)) + " would share GPU " +
              std::to_string(device_) + " on " + host + " (" + std::to_string(visibleDevices_) +
              " visible to this rank); launch at most one rank per GPU";
  if (!error.empty())
    return error;
  check(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaStreamCreateWithFlags(&comm_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaEventCreateWithFlags(&computeReady_, cudaEventDisableTiming), "cudaEventCreate");
  checkBlas(cublasLtCreate(&lt_), "cublasLtCreate");
  checkBlas(cublasCreate(&blas_), "cublasCreate");
  checkBlas(cublasSetStream(blas_, compute_), "cublasSetStream");
  workspace_ = allocate(kWorkspaceBytes);
  // A fixed workspace: cuBLAS must not allocate while a graph is captured.
  checkBlas(cublasSetWorkspace(blas_, workspace_, kWorkspaceBytes), "cublasSetWorkspace");
  checkBlas(cublasSetMathMode(blas_,
                              math_ == GemmMath::BF16 ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH),
            "cublasSetMathMode");
  failure_ = static_cast<int64_t *>(allocate(2 * sizeof(int64_t)));
  if (const char *env = std::getenv("DTL_CUDA_GRAPHS"))
    graphs_ = std::strcmp(env, "0") != 0;
  return "";
}

void *Gpu::allocate(size_t bytes) {
  void *p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  // On the compute stream, so the kernels queued after it see zeros.
  check(cudaMemsetAsync(p, 0, bytes ? bytes : 1, compute_), "cudaMemsetAsync");
  allocated_ += int64_t(bytes);
  return p;
}

void Gpu::upload(void *device, const void *host, size_t bytes) {
  check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, compute_), "upload");
}

void Gpu::download(void *host, const void *device, size_t bytes) {
  check(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, compute_), "download");
  synchronize();
}

void *Gpu::grow(Grown &grown, size_t bytes) {
  if (bytes > grown.size) {
    // The old buffer stays allocated: graphs captured earlier still use it.
    grown.buffer = allocate(bytes);
    grown.size = bytes;
  }
  return grown.buffer;
}

void *Gpu::scratch(Scratch kind, size_t bytes) { return grow(scratch_[int(kind)], bytes); }

void *Gpu::slotScratch(int slot, size_t bytes) { return grow(slotScratch_[slot], bytes); }

cudaEvent_t Gpu::slotEvent(int slot) {
  cudaEvent_t &e = slotEvents_[slot];
  if (!e)
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  return e;
}

ncclComm_t Gpu::communicator(Context &ctx, const Axes &axes) {
  auto it = nccl_.find(axes);
  if (it != nccl_.end())
    return it->second;
  ncclUniqueId id;
  int index = ctx.indexAlong(axes), span = ctx.spanOf(axes);
  if (index == 0)
    checkNccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, ctx.commFor(axes));
  ncclComm_t comm;
  checkNccl(ncclCommInitRank(&comm, span, id, index), "ncclCommInitRank");
  nccl_[axes] = comm;
  return comm;
}

cudaStream_t Gpu::beginCollective(int slot, const char *what) {
  pending_.push_back(slot);
  lastQueued_ = what;
  check(cudaEventRecord(computeReady_, compute_), "cudaEventRecord");
  check(cudaStreamWaitEvent(comm_, computeReady_, 0), "cudaStreamWaitEvent");
  return comm_;
}

void Gpu::endCollective(int slot) {
  check(cudaEventRecord(slotEvent(slot), comm_), "cudaEventRecord");
}

void Gpu::waitFor(int slot) {
  check(cudaStreamWaitEvent(compute_, slotEvent(slot), 0), "cudaStreamWaitEvent");
}

void Gpu::joinAll() {
  for (int slot : pending_)
    waitFor(slot);
  pending_.clear();
}

/// Polls the compute stream until the step is done, watching NCCL's async
/// errors; the watchdog times the wait.
void Gpu::synchronize() {
  watchdogBeatText("waiting for the step on the GPU (last collective queued: " + lastQueued_ + ")");
  for (int polls = 0;; ++polls) {
    cudaError_t status = cudaStreamQuery(compute_);
    if (status == cudaSuccess)
      break;
    if (status != cudaErrorNotReady)
      check(status, "the step failed on the GPU");
    for (auto &[axes, comm] : nccl_) {
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm, &async);
      if (async != ncclSuccess && async != ncclInProgress)
        fail(std::string("NCCL failed in a collective (") + ncclGetErrorString(async) +
             "); last queued: " + lastQueued_);
    }
    if (polls > 1000)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  int64_t failure[2] = {0, 0};
  check(cudaMemcpy(failure, failure_, sizeof failure, cudaMemcpyDeviceToHost), "read failures");
  if (failure[0] != 0) {
    check(cudaMemset(failure_, 0, sizeof failure), "cudaMemset");
    throw DataError(failure[0] == kBadLabel
                        ? "a label is " + std::to_string(failure[1]) +
                              ", beyond the classifier's classes (labels must be below them)"
                        : "a token id is " + std::to_string(failure[1]) +
                              ", outside the embedding table");
  }
}

void Gpu::run(StepFn fn, Context &ctx, const std::vector<void *> &args,
              const std::vector<void *> &results) {
  std::vector<void *> key(args);
  key.insert(key.end(), results.begin(), results.end());
  Graph &g = steps_[{fn, key}];
  ++g.calls;
  // The first call runs eagerly: it makes the arena, NCCL communicators and
  // scratch buffers and picks the GEMM algorithms, none of which a graph
  // capture may do.
  if (!graphs_ || g.calls == 1) {
    fn(ctx, args.data(), results.data());
  } else {
    if (!g.exec) {
      cudaGraph_t graph;
      check(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal),
            "cudaStreamBeginCapture");
      fn(ctx, args.data(), results.data());
      check(cudaStreamEndCapture(compute_, &graph), "cudaStreamEndCapture");
      check(cudaGraphInstantiate(&g.exec, graph, 0), "cudaGraphInstantiate");
      check(cudaGraphDestroy(graph), "cudaGraphDestroy");
    }
    check(cudaGraphLaunch(g.exec, compute_), "cudaGraphLaunch");
  }
  synchronize();
}

namespace {

/// The Device the training loop sees.
class CudaDevice final : public Device {
public:
  std::string setUp(const LaunchInfo &launch, Context &ctx, int rank) override {
    return Gpu::get().setUp(launch, ctx, rank);
  }
  std::string describe() const override { return Gpu::get().description(); }
  void *allocate(size_t bytes) override { return Gpu::get().allocate(bytes); }
  void upload(void *device, const void *host, size_t bytes) override {
    Gpu::get().upload(device, host, bytes);
  }
  void download(void *host, const void *device, size_t bytes) override {
    Gpu::get().download(host, device, bytes);
  }
  void run(StepFn fn, Context &ctx, const std::vector<void *> &args,
           const std::vector<void *> &results) override {
    Gpu::get().run(fn, ctx, args, results);
  }
  int64_t allocatedBytes() const override { return Gpu::get().allocatedBytes(); }
};

} // namespace

Device *device(GemmMath math) {
  static CudaDevice device;
  Gpu::get().setMath(math);
  return &device;
}

cudaStream_t stream() { return Gpu::get().computeStream(); }

char *arena(int64_t bytes) { return static_cast<char *>(Gpu::get().allocate(size_t(bytes))); }

void waitFor(int slot) { Gpu::get().waitFor(slot); }
void joinAll() { Gpu::get().joinAll(); }

} // namespace dtlrt::cuda
