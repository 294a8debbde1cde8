//===- Runtime.h - what a generated program hands the runtime ---*- C++ -*-===//
//
// A generated program describes its tensors and step functions in constant
// tables (ProgramDecl) and calls dtlrt::run, which owns everything around
// the math: ranks, mesh, data, initialisation, the training loop, logs and
// evaluation.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_RUNTIME_H
#define DTLRT_RUNTIME_H

#include <cstdint>
#include <string>
#include <vector>

namespace dtlrt {

class Context;
class Device;

enum class DType { F32, F64, I32 };
size_t sizeOf(DType t);

/// The runtime's twins of the dtl dialect's enums (dialects/dtl/DtlAttrs.td),
/// each value the dialect's name in CamelCase (opt_state: OptState), which
/// is how the printers spell them: generated programs pass these, never
/// strings.
enum class Role { Param, Input, OptState, Lr, Step, Loss, GradNorm, Grad, Correct };
enum class Init { Zeros, Ones, Normal, Uniform };
enum class LrSchedule { Constant, Warmup, Cosine, WarmupCosine };
enum class Source { None, Idx, Synthetic, Tokens };

/// The number of elements of a tensor of `shape` (dimensions from `first` on).
inline int64_t numElements(const std::vector<int64_t> &shape, size_t first = 0) {
  int64_t n = 1;
  for (size_t d = first; d < shape.size(); ++d)
    n *= shape[d];
  return n;
}

/// Mesh axes that split one tensor dimension, major to minor.
using Axes = std::vector<int>;

/// One argument or result of a step function.
struct TensorSpec {
  Role role = Role::Input;
  std::string name; ///< e.g. "w1", "w1.m"
  DType dtype = DType::F32;
  std::vector<int64_t> globalShape, localShape;
  std::vector<Axes> dimAxes;   ///< per dimension
  Init init = Init::Zeros;     ///< params
  double initA = 0, initB = 0; ///< normal: mean, std; uniform: low, high
  /// i32 inputs: the data's values must lie in [0, bound) (0: unchecked)
  int64_t bound = 0;
  /// ...or be negative, for class labels (an ignored example).
  bool ignorable = false;
  /// Stored interleaved (dtl-interleave-splits): dimension interleaveDim
  /// (-1: none) is interleaveBlocks blocks, each holding 1/blocks of every
  /// piece (interleavePieces: their sizes, in declared order).
  int interleaveDim = -1;
  int64_t interleaveBlocks = 1;
  std::vector<int64_t> interleavePieces;
  /// Uneven pipeline stages (dimension 0, then interleaveDim too): stage s
  /// stores its stageLayers[s] layers first in its max(stageLayers) slots;
  /// the rest are holes, in no declared place.
  std::vector<int64_t> stageLayers;
  int64_t localSize() const;
  /// Where stored position `stored` along interleaveDim is in the tensor as
  /// declared (-1: a hole), and how many stored positions from it on stay
  /// consecutive there (to the end of its piece's share of the block, or of
  /// the stage's layers or hole).
  std::pair<int64_t, int64_t> declaredRun(int64_t stored) const;
};

using StepFn = void (*)(Context &ctx, void *const *args, void *const *results);

struct StepSpec {
  StepFn fn = nullptr;
  std::vector<TensorSpec> args, results;
};

struct DataSpec {
  Source source = Source::None;
  std::vector<std::string> inputs, files;
  int64_t classes = 10, size = 1024;
};

struct Program {
  std::string name, sourceFile;
  std::vector<std::string> axisNames;
  std::vector<int> axisSizes;
  /// train: params, state, inputs, lr, step -> loss, grad_norm, new params, new state;
  /// eval: params, inputs -> loss (mean), correct (count);
  /// grad: params, inputs -> loss, one gradient per param (for --check-grads).
  StepSpec trainStep, evalStep, gradStep;
  DataSpec data, eval;
  double lr = 1e-3, minLr = 0;
  LrSchedule schedule = LrSchedule::Constant;
  int64_t warmup = 0, steps = 100, logEvery = 10, evalEvery = 0, seed = 0;
  int64_t evalBatches = 0; ///< batches per evaluation; 0: the whole eval source
  /// Consecutive skipped updates (non-finite loss or gradient norm) that stop the run.
  int64_t maxSkippedSteps = 10;
  /// Checkpoints: every N steps (0: only when preempted), the newest K kept (0: all), where.
  int64_t checkpointEvery = 0, keepLast = 3;
  std::string checkpointDir = "checkpoints";
  /// precision = bf16 on the CPU: values stored in bf16, masters in f32.
  bool storesBf16 = false;
  /// Where the steps run: null for the host (the CPU target).
  Device *device = nullptr;
};

/// How a generated program describes itself: plain constant tables, which
/// the host compiler reads in no time (the same description built as
/// std::vectors in main() took it seconds at -O3). dtlrt::run turns them
/// into a Program.
constexpr int kMaxRank = 8, kMaxAxesPerDim = 4, kMaxInterleavePieces = 16, kMaxStages = 64;

struct TensorDecl {
  Role role;
  const char *name;
  DType dtype;
  int rank;
  int64_t globalShape[kMaxRank], localShape[kMaxRank];
  /// Per dimension, the mesh axes splitting it, major first, then -1.
  int8_t dimAxes[kMaxRank][kMaxAxesPerDim + 1];
  Init init;
  double initA, initB;
  int64_t bound;
  bool ignorable;
  /// {dim, blocks, piece sizes..., 0...}; blocks 0: stored in order.
  int64_t interleave[kMaxInterleavePieces + 2];
  /// Uneven pipeline stages: their layers, {n_0, ..., 0...}; {0}: none.
  int64_t stageLayers[kMaxStages];
};

struct StepDecl {
  StepFn fn;
  const TensorDecl *args;
  int numArgs;
  const TensorDecl *results;
  int numResults;
};

struct DataDecl {
  Source source;
  const char *const *inputs;
  int numInputs;
  const char *const *files;
  int numFiles;
  int64_t classes, size;
};

struct ProgramDecl {
  const char *name, *sourceFile;
  const char *const *axisNames;
  const int *axisSizes;
  int numAxes;
  StepDecl trainStep, evalStep, gradStep; ///< gradStep.fn may be null
  DataDecl data, eval;
  double lr, minLr;
  LrSchedule schedule;
  int64_t warmup, steps, logEvery, evalEvery, evalBatches, seed;
  int64_t maxSkippedSteps, checkpointEvery, keepLast;
  const char *checkpointDir;
  bool storesBf16; ///< precision = bf16: values stored in bf16, masters in f32
};

/// The instruction set a generated program was built for (dtlc --march,
/// passed as -DDTLRT_MARCH=...): the program checks it before main, and
/// refuses to start on a CPU without it.
#ifndef DTLRT_MARCH
#define DTLRT_MARCH "native"
#endif

/// Exits with a message when this CPU lacks `march` (x86-64-v2/v3/v4; other
/// names are not checked); remembers it for the banner. Built for the
/// baseline x86-64, so it runs on any x86-64 CPU.
void requireCpu(const char *march);

/// Bytes allocated so far for the step functions' arenas.
int64_t stepBufferBytes();

/// Heap bytes the bf16 GEMM library (oneDNN) took to make its kernels: the
/// generated code and state of each GEMM shape, not tensors (so not in a
/// buffer plan); about 70-320 KB per shape, whatever the batch.
int64_t gemmKernelBytes();

/// A zeroed buffer of `n` elements for the intermediate values of a step
/// function; it lives as long as the program. Counted in stepBufferBytes().
template <typename T> T *stepBuffer(int64_t n) {
  extern int64_t stepBufferBytesAllocated;
  stepBufferBytesAllocated += n * int64_t(sizeof(T));
  return new T[n > 0 ? n : 1]();
}

/// The Program a generated program's tables describe, its steps running on
/// `device` (null: the host).
Program programFrom(const ProgramDecl &decl, Device *device);

/// Runs the training loop; returns the process exit code.
int run(const ProgramDecl &program, Device *device, int argc, char **argv);

} // namespace dtlrt

#endif // DTLRT_RUNTIME_H
