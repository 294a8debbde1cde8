//===- Launch.cpp - dtlrt::run: joining the launch, then the trainer ------===//
//
// What happens before the first step: flags, the OpenBLAS core, threads per
// rank, denormals, MPI, the world size against the mesh, the device, the
// banner. Data errors inside a step abort every rank rather than hang them.
//
//===----------------------------------------------------------------------===//

#include "Options.h"
#include "Preemption.h"
#include "Trainer.h"

#include "dtlrt/Data.h"
#include "dtlrt/RankDiscovery.h"
#include "dtlrt/Watchdog.h"

#include <cblas.h>
#include <limits>
#include <omp.h>
#include <stdexcept>
#if defined(__SSE__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

extern "C" void openblas_set_num_threads(int);
extern "C" char *openblas_get_corename(void);

namespace dtlrt {

namespace {
const char *programMarch = "native";
} // namespace

#if defined(__x86_64__)
__attribute__((target("arch=x86-64")))
#endif
void requireCpu(const char *march) {
  programMarch = march;
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool ok = true;
  if (std::strcmp(march, "x86-64-v2") == 0)
    ok = __builtin_cpu_supports("x86-64-v2");
  else if (std::strcmp(march, "x86-64-v3") == 0)
    ok = __builtin_cpu_supports("x86-64-v3");
  else if (std::strcmp(march, "x86-64-v4") == 0)
    ok = __builtin_cpu_supports("x86-64-v4");
  if (!ok) {
    std::fprintf(stderr,
                 "error: this program was built for %s (dtlc --march), which this CPU lacks; "
                 "rebuild it with a lower --march (x86-64-v2, or native on this machine)\n",
                 march);
    std::_Exit(1);
  }
#endif
}

size_t sizeOf(DType t) { return t == DType::F64 ? 8 : 4; }

int64_t stepBufferBytesAllocated = 0;
int64_t stepBufferBytes() { return stepBufferBytesAllocated; }

int64_t TensorSpec::localSize() const { return numElements(localShape); }

std::pair<int64_t, int64_t> TensorSpec::declaredRun(int64_t stored) const {
  if (interleaveDim < 0)
    return {stored, std::numeric_limits<int64_t>::max()};
  if (!stageLayers.empty()) {
    int64_t slots = *std::max_element(stageLayers.begin(), stageLayers.end());
    size_t stage = size_t(stored / slots);
    int64_t within = stored % slots, first = 0;
    if (stage >= stageLayers.size())
      throw std::logic_error(name + ": stored position " + std::to_string(stored) +
                             " is outside its stages' slots");
    for (size_t s = 0; s < stage; ++s)
      first += stageLayers[s];
    if (within >= stageLayers[stage])
      return {-1, slots - within};
    return {first + within, stageLayers[stage] - within};
  }
  int64_t total = 0;
  for (int64_t piece : interleavePieces)
    total += piece;
  int64_t blockLength = total / interleaveBlocks, block = stored / blockLength;
  int64_t within = stored % blockLength, pieceStart = 0, shareStart = 0;
  for (int64_t piece : interleavePieces) {
    int64_t share = piece / interleaveBlocks;
    if (within < shareStart + share)
      return {pieceStart + block * share + (within - shareStart), shareStart + share - within};
    pieceStart += piece;
    shareStart += share;
  }
  throw std::logic_error(name + ": stored position " + std::to_string(stored) +
                         " is outside its interleaved dimension");
}

namespace {

std::string meshString(const Program &p) {
  std::string s = "[";
  for (size_t i = 0; i < p.axisNames.size(); ++i)
    s += (i ? ", " : "") + p.axisNames[i] + ": " + std::to_string(p.axisSizes[i]);
  return s + "]";
}

/// Every thread flushes denormals to zero: they cost ~100x in x86 float math
/// and no training run needs them. Threads made later inherit the setting.
void flushDenormals() {
#if defined(__SSE__)
#pragma omp parallel
  {
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
  }
#endif
}

/// OpenBLAS 0.3.21 falls back to its generic Prescott kernels on CPUs newer
/// than it knows (about 3x slower GEMM on an AVX-512 Xeon), and reads its
/// core choice only when it is loaded, before main. So when that happened
/// and the CPU has AVX-512 (or AVX2), run this program again with the
/// nearest core it knows named in OPENBLAS_CORETYPE. Before MPI_Init, so the
/// launcher sees the same process; a user's OPENBLAS_CORETYPE is respected.
void reexecWithKnownBlasCore(char **argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::strcmp(openblas_get_corename(), "Prescott") != 0)
    return;
  const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                       : nullptr;
  if (!core)
    return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  execv("/proc/self/exe", argv); // returns only on failure: go on as we are
}

/// Threads per rank: the machine's cores shared among the ranks on it,
/// unless OMP_NUM_THREADS says otherwise.
int threadsPerRank(const LaunchInfo &launch) {
  if (const char *env = std::getenv("OMP_NUM_THREADS"))
    if (int n = std::atoi(env); n > 0)
      return n;
  int cores = int(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, launch.localSize));
}

TensorSpec tensorFrom(const TensorDecl &decl) {
  TensorSpec spec;
  spec.role = decl.role;
  spec.name = decl.name;
  spec.dtype = decl.dtype;
  spec.globalShape.assign(decl.globalShape, decl.globalShape + decl.rank);
  spec.localShape.assign(decl.localShape, decl.localShape + decl.rank);
  for (int d = 0; d < decl.rank; ++d) {
    Axes &axes = spec.dimAxes.emplace_back();
    for (int i = 0; i <= kMaxAxesPerDim && decl.dimAxes[d][i] >= 0; ++i)
      axes.push_back(decl.dimAxes[d][i]);
  }
  spec.init = decl.init;
  spec.initA = decl.initA;
  spec.initB = decl.initB;
  spec.bound = decl.bound;
  spec.ignorable = decl.ignorable;
  if (decl.interleave[1] > 0) {
    spec.interleaveDim = int(decl.interleave[0]);
    spec.interleaveBlocks = decl.interleave[1];
    for (int i = 2; i < kMaxInterleavePieces + 2 && decl.interleave[i] > 0; ++i)
      spec.interleavePieces.push_back(decl.interleave[i]);
  }
  for (int s = 0; s < kMaxStages && decl.stageLayers[s] > 0; ++s)
    spec.stageLayers.push_back(decl.stageLayers[s]);
  if (!spec.stageLayers.empty())
    spec.interleaveDim = 0;
  return spec;
}

StepSpec stepFrom(const StepDecl &decl) {
  StepSpec step;
  step.fn = decl.fn;
  for (int i = 0; i < decl.numArgs; ++i)
    step.args.push_back(tensorFrom(decl.args[i]));
  for (int i = 0; i < decl.numResults; ++i)
    step.results.push_back(tensorFrom(decl.results[i]));
  return step;
}

DataSpec dataFrom(const DataDecl &decl) {
  DataSpec data;
  data.source = decl.source;
  data.inputs.assign(decl.inputs, decl.inputs + decl.numInputs);
  data.files.assign(decl.files, decl.files + decl.numFiles);
  data.classes = decl.classes;
  data.size = decl.size;
  return data;
}

} // namespace

Program programFrom(const ProgramDecl &decl, Device *device) {
  Program p;
  p.name = decl.name;
  p.sourceFile = decl.sourceFile;
  p.axisNames.assign(decl.axisNames, decl.axisNames + decl.numAxes);
  p.axisSizes.assign(decl.axisSizes, decl.axisSizes + decl.numAxes);
  p.trainStep = stepFrom(decl.trainStep);
  p.evalStep = stepFrom(decl.evalStep);
  p.gradStep = stepFrom(decl.gradStep);
  p.data = dataFrom(decl.data);
  p.eval = dataFrom(decl.eval);
  p.lr = decl.lr;
  p.minLr = decl.minLr;
  p.schedule = decl.schedule;
  p.warmup = decl.warmup;
  p.steps = decl.steps;
  p.logEvery = decl.logEvery;
  p.evalEvery = decl.evalEvery;
  p.evalBatches = decl.evalBatches;
  p.seed = decl.seed;
  p.maxSkippedSteps = decl.maxSkippedSteps;
  p.checkpointEvery = decl.checkpointEvery;
  p.keepLast = decl.keepLast;
  p.checkpointDir = decl.checkpointDir;
  p.storesBf16 = decl.storesBf16;
  p.device = device;
  return p;
}

int run(const ProgramDecl &decl, Device *device, int argc, char **argv) {
  const Program program = programFrom(decl, device);
  Options options;
  if (!parseOptions(program, argc, argv, options))
    return 2;
  if (options.help) {
    usage(program);
    return 0;
  }
  reexecWithKnownBlasCore(argv);
  Program p = program;
  for (auto [files, source] :
       {std::pair(&options.data, &p.data), std::pair(&options.evalData, &p.eval)})
    if (!files->empty()) {
      if (files->size() != source->files.size()) {
        std::fprintf(stderr, "error: %s takes %zu file%s (as many as the train section names)\n",
                     source == &p.data ? "--data" : "--eval-data", source->files.size(),
                     source->files.size() == 1 ? "" : "s");
        return 2;
      }
      source->files = *files;
    }
  LaunchInfo launch = discoverLaunch([](const char *name) { return std::getenv(name); });
  int threads = threadsPerRank(launch);
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  flushDenormals();

  // The watchdog's monitor thread talks to its peers while the main thread
  // waits in a collective.
  int threading = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &threading);
  int worldSize = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int meshSize = 1;
  for (int s : program.axisSizes)
    meshSize *= s;
  int exitCode = 0;
  std::string timeoutError;
  double timeout = watchdogTimeout(timeoutError);
  if (!timeoutError.empty()) {
    if (rank == 0)
      std::fprintf(stderr, "error: %s\n", timeoutError.c_str());
    exitCode = 2;
  } else if (launch.worldSize != worldSize) {
    if (rank == 0)
      std::fprintf(stderr,
                   "error: the %s launcher says %d processes, but MPI sees %d; this build "
                   "joins ranks through MPI, so launch it with mpirun or srun\n",
                   launch.launcher.c_str(), launch.worldSize, worldSize);
    exitCode = 1;
  } else if (worldSize != meshSize) {
    if (rank == 0)
      std::fprintf(stderr,
                   "error: the mesh %s of %s needs %d processes, but %d %s launched; run "
                   "`mpirun -np %d %s` or recompile with `dtlc --mesh ...`\n",
                   meshString(program).c_str(), program.sourceFile.c_str(), meshSize, worldSize,
                   worldSize == 1 ? "was" : "were", meshSize, argv[0]);
    exitCode = 1;
  }
  if (exitCode) {
    MPI_Finalize();
    return exitCode;
  }
  {
    Context ctx(program.axisSizes, rank);
    if (p.device) {
      // Every rank learns whether all found their device, so none waits alone.
      std::string error = p.device->setUp(launch, ctx, rank);
      int failed = !error.empty(), anyFailed = 0;
      MPI_Allreduce(&failed, &anyFailed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      if (failed)
        std::fprintf(stderr, "error: rank %d: %s\n", rank, error.c_str());
      if (anyFailed) {
        MPI_Finalize();
        return 1;
      }
    }
    if (rank == 0 && !options.checkGrads) {
      std::string where =
          p.device ? p.device->describe() + " per rank"
                   : std::to_string(threads) + " thread" + (threads == 1 ? "" : "s") + " per rank";
      std::printf("%s: %d rank%s on mesh %s (launcher: %s), %s, %lld steps, watchdog %.0f s "
                  "(DTL_TIMEOUT), built for %s\n",
                  program.name.c_str(), worldSize, worldSize == 1 ? "" : "s",
                  meshString(program).c_str(), launch.launcher.c_str(), where.c_str(),
                  (long long)options.steps, timeout, programMarch);
      std::fflush(stdout);
    }
    installPreemptionHandlers();
    // Past a file-size limit a write fails (EFBIG) and is reported, instead
    // of the signal killing the rank in the middle of a checkpoint.
    std::signal(SIGXFSZ, SIG_IGN);
    startWatchdog(timeout, rank, threading >= MPI_THREAD_MULTIPLE, program.axisNames);
    try {
      exitCode = Trainer(p, options, ctx, rank).run();
    } catch (const DataError &e) {
      // Inside a step: other ranks may be waiting in a collective for this
      // one, so abort them all rather than hang.
      std::fprintf(stderr, "error: rank %d: %s\n", rank, e.what());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    stopWatchdog();
  }
  MPI_Finalize();
  return exitCode;
}

} // namespace dtlrt
