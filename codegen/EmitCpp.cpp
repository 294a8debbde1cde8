//===- EmitCpp.cpp - partitioned dtl module -> C++ for the CPU ------------===//
//
// Each function becomes a C++ function over flat row-major buffers: GEMMs
// and row-wise kernels call libdtlrt (OpenBLAS underneath), elementwise ops
// become inline OpenMP loops, `shard` collectives become calls on the rank's
// Context. Intermediate values live in one arena per function, allocated on
// the first call; a value's bytes are reused once it is dead (BufferPlan).
//
//===----------------------------------------------------------------------===//

#include "codegen/EmitCpp.h"
#include "codegen/BufferPlan.h"
#include "codegen/Fusion.h"
#include "codegen/StepEmitter.h"
#include "dialects/dtl/DtlOps.h"
#include "dialects/dtl/Contract.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace dtl;
using namespace dtl::emit;

namespace {

/// Elementwise ops of size at least this run on all threads.
constexpr int64_t kParallelThreshold = 32768;

class FunctionEmitter : StepEmitter {
public:
  FunctionEmitter(func::FuncOp fn, Schedule schedule, int64_t realBytes,
                  ArrayRef<int64_t> meshShape, uint64_t seed, raw_ostream &os)
      : StepEmitter(fn, planBuffers(fn, realBytes, schedule), os),
        schedule_(std::move(schedule)), meshShape_(meshShape), seed_(seed) {}

  LogicalResult emit(StringRef cppName) {
    os_ << "void " << cppName
        << "(dtlrt::Context &ctx, void *const *args, void *const *results) {\n";
    os_ << "  (void)ctx;\n  static char *const arena = dtlrt::stepBuffer<char>(" << plan_.arenaBytes
        << ");\n";
    declareArguments();
    for (Operation &op : fn_.getBody().front()) {
      if (schedule_.fusedInto.count(&op))
        continue; // computed in the loop of the op it is fused into
      if (failed(emitOp(op)))
        return failure();
    }
    os_ << "}\n\n";
    return success();
  }

private:
  /// A call `dtlrt::kernel(args...)` whose arguments are given in order;
  /// results are defined first.
  void call(StringRef kernel, ArrayRef<std::string> args) {
    os_ << "  dtlrt::" << kernel << "(" << llvm::join(args, ", ") << ");\n";
  }

  /// out[i] = the value of `root` at i, with the elementwise ops fused
  /// into it computed inline: one loop per chain.
  void emitFused(Operation &root) {
    std::string body = fusedExpression(&root, schedule_, "dtlrt",
                                       [&](Value v) { return use(v) + "[i]"; });
    std::string out = define(root.getResult(0));
    int64_t n = numElements(root.getResult(0).getType());
    if (n >= kParallelThreshold)
      os_ << "#pragma omp parallel for simd\n";
    os_ << "  for (int64_t i = 0; i < " << n << "; ++i)\n    " << out << "[i] = " << body << ";\n";
  }

  static std::string axesOf(ArrayRef<int16_t> axes) { return "dtlrt::Axes" + axesList(axes); }

  /// ctx.method(input, result, {input shape}, dims..., axes): the shape-
  /// aware collectives of the runtime's Context.
  LogicalResult collective(StringRef method, Operation *op, ArrayRef<uint64_t> dims,
                           ArrayRef<int16_t> axes) {
    std::string result = define(op->getResult(0));
    os_ << "  ctx." << method << "(" << use(op->getOperand(0)) << ", " << result
        << ", std::vector<int64_t>" << joined(shapeOf(op->getOperand(0)));
    for (uint64_t d : dims)
      os_ << ", " << d;
    os_ << ", " << axesOf(axes) << ");\n";
    return success();
  }

  /// Dropout draws its mask by global index: the partitioner leaves the
  /// input's layout on the op, from which each rank finds its offsets.
  LogicalResult emitDropout(DropoutOp d) {
    FailureOr<DropoutLayout> layout = dropoutLayout(d, meshShape_);
    if (failed(layout))
      return failure();
    std::string result = define(d.getResult());
    os_ << "  { static const int64_t local[] = " << joined(layout->local) << ", global[] = "
        << joined(layout->global) << ";\n    const int64_t offsets[] = {"
        << llvm::join(layout->offsets, ", ") << "};\n    dtlrt::dropout(" << use(d.getInput())
        << ", " << result << ", " << layout->local.size() << ", local, global, offsets, "
        << literal(d.getRate().convertToDouble()) << ", " << seed_ << "ull, " << d.getStream()
        << ", int64_t(" << use(d.getStep()) << "[0])); }\n";
    return success();
  }

  /// dtlrt::broadcast gathers with per-dimension input strides.
  void emitGather(Value input, Value result, ArrayRef<int64_t> strides) {
    std::string out = define(result);
    os_ << "  { static const int64_t shape[] = " << joined(shapeOf(result))
        << ", strides[] = " << joined(strides) << ";\n    dtlrt::broadcast(" << use(input) << ", "
        << out << ", shape, strides, " << strides.size() << "); }\n";
  }

  LogicalResult emitOp(Operation &op) {
    if (isElementwise(&op)) {
      emitFused(op);
      return success();
    }
    if (emitRowKernel(op, "dtlrt") || emitView(op))
      return success();
    if (std::optional<GemmCall> gemm = gemmCall(op)) {
      SmallVector<std::string> args = gemm->args;
      if (!gemm->bias.empty())
        args.push_back(gemm->bias);
      args.push_back(gemm->out);
      call(gemm->bias.empty() ? "matmul" : "matmulBias", args);
      return success();
    }
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        .Case([&](BroadcastOp b) {
          emitGather(b.getInput(), b.getResult(), gatherStrides(b));
          return success();
        })
        .Case([&](ReduceSumOp r) {
          ArrayRef<int64_t> in = shapeOf(r.getInput());
          SmallVector<std::string> reduced(in.size(), "false");
          for (int64_t d : r.getDims())
            reduced[d] = "true";
          std::string result = define(r.getResult());
          os_ << "  { static const int64_t shape[] = " << joined(in) << ";\n"
              << "    static const bool reduced[] = {" << llvm::join(reduced, ", ") << "};\n"
              << "    dtlrt::reduceSum(" << use(r.getInput()) << ", " << result
              << ", shape, reduced, " << in.size() << "); }\n";
          return success();
        })
        .Case([&](StackOp s) {
          std::string result = define(s.getResult());
          int64_t n = numElements(s.getInputs().front().getType());
          for (auto [i, v] : llvm::enumerate(s.getInputs()))
            os_ << "  std::memcpy(" << result << " + " << i * n << ", " << use(v) << ", " << n
                << " * sizeof(real));\n";
          return success();
        })
        .Case([&](TransposeOp t) {
          emitGather(t.getInput(), t.getResult(), gatherStrides(t));
          return success();
        })
        .Case([&](DropoutOp d) { return emitDropout(d); })
        .Case([&](AdamwUpdateOp u) {
          std::string param = define(u.getNewParam()), m = define(u.getNewM()),
                      v = define(u.getNewV());
          os_ << llvm::formatv("  dtlrt::adamwUpdate({0}, {1}, {2}, {3}, {4}[0], {5}[0], {6}, {7}, "
                               "{8}, {9}, {10}, {11}, {12}, int64_t({13}));\n",
                               use(u.getParam()), use(u.getGrad()), use(u.getM()), use(u.getV()),
                               use(u.getLr()), use(u.getStep()),
                               literal(u.getBeta1().convertToDouble()),
                               literal(u.getBeta2().convertToDouble()),
                               literal(u.getEps().convertToDouble()),
                               literal(u.getWeightDecay().convertToDouble()), param, m, v,
                               numElements(u.getParam().getType()));
          return success();
        })
        .Case([&](SgdUpdateOp u) {
          std::string param = define(u.getNewParam()), buf = define(u.getNewMomentumBuf());
          os_ << llvm::formatv("  dtlrt::sgdUpdate({0}, {1}, {2}, {3}[0], {4}, {5}, {6}, {7}, "
                               "int64_t({8}));\n",
                               use(u.getParam()), use(u.getGrad()), use(u.getMomentumBuf()),
                               use(u.getLr()), literal(u.getMomentum().convertToDouble()),
                               literal(u.getWeightDecay().convertToDouble()), param, buf,
                               numElements(u.getParam().getType()));
          return success();
        })
        .Case([&](shard::AllReduceOp r) {
          std::string result = define(r.getResult());
          int64_t n = numElements(r.getResult().getType());
          os_ << "  std::memcpy(" << result << ", " << use(r.getInput()) << ", " << n
              << " * sizeof(real));\n  ctx.allReduceSum(" << result << ", " << n << ", "
              << axesOf(r.getGridAxes()) << ");\n";
          return success();
        })
        .Case([&](shard::ReduceScatterOp r) {
          return collective("reduceScatterSum", r, {r.getScatterAxis().getZExtValue()},
                            r.getGridAxes());
        })
        .Case([&](shard::AllToAllOp a) {
          return collective("allToAll", a,
                            {a.getSplitAxis().getZExtValue(), a.getConcatAxis().getZExtValue()},
                            a.getGridAxes());
        })
        .Case([&](shard::AllGatherOp g) {
          return collective("allGather", g, {g.getGatherAxis().getZExtValue()}, g.getGridAxes());
        })
        .Case([&](shard::AllSliceOp s) {
          return collective("allSlice", s, {s.getSliceAxis().getZExtValue()}, s.getGridAxes());
        })
        .Case([&](func::ReturnOp r) {
          for (auto [i, v] : llvm::enumerate(r.getOperands()))
            if (!inPlace_.count(v))
              os_ << "  std::memcpy(results[" << i << "], " << use(v) << ", "
                << numElements(v.getType()) << " * sizeof(" << elementType(v.getType())
                << "));\n";
          return success();
        })
        .Default([&](Operation *other) {
          return other->emitError("the CPU code generator does not handle this op");
        });
  }

  Schedule schedule_;
  ArrayRef<int64_t> meshShape_;
  uint64_t seed_;
};

} // namespace

LogicalResult dtl::emitCpp(ModuleOp module, const CppOptions &options, raw_ostream &os) {
  ProgramTarget target;
  target.sourceFile = options.sourceFile;
  target.f64 = options.f64;
  target.prelude = "#include \"dtlrt/Context.h\"\n#include \"dtlrt/Kernels.h\"\n"
                   "#include \"dtlrt/Runtime.h\"\n\n#include <cmath>\n#include <cstdint>\n"
                   "#include <cstring>\n#include <vector>\n";
  target.emitFunction = [&](func::FuncOp fn, StringRef cppName, ArrayRef<int64_t> meshShape,
                            uint64_t seed, raw_ostream &out) {
    return FunctionEmitter(fn, fuseElementwise(fn), options.f64 ? 8 : 4, meshShape, seed, out)
        .emit(cppName);
  };
  return emitProgram(module, target, os);
}
