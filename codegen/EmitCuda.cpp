//===- EmitCuda.cpp - partitioned dtl module -> CUDA C++ -------------------===//
//
// The GPU twin of EmitCpp: each step function runs on libdtlrt_cuda's compute
// stream over device buffers. Chains of elementwise ops become one generated
// kernel each (a value used once, by the next elementwise op, stays in a
// register), with float4 loads and stores where the size allows. GEMMs and
// row kernels call libdtlrt_cuda. Collectives go to the communication
// stream; the compute stream waits for one only where its result is first
// read, and the buffer plan keeps its input alive until then, so the
// collective overlaps the compute in between.
//
//===----------------------------------------------------------------------===//

#include "codegen/EmitCuda.h"
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

bool isCollective(Operation *op) {
  return isa<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllToAllOp, shard::AllGatherOp>(
      op);
}

/// Which ops the CUDA target fuses and how long collective inputs are read.
Schedule scheduleOf(func::FuncOp fn) {
  Block &body = fn.getBody().front();
  DenseMap<Operation *, int64_t> position;
  int64_t index = 0;
  for (Operation &op : body)
    position[&op] = index++;
  Schedule schedule = fuseElementwise(fn);
  auto runsAt = [&](Operation *op) {
    while (schedule.fusedInto.count(op))
      op = schedule.fusedInto.lookup(op);
    return op;
  };
  // The first op that really reads `v` (through views).
  std::function<Operation *(Value)> firstRead = [&](Value v) -> Operation * {
    Operation *first = nullptr;
    for (Operation *user : v.getUsers()) {
      Operation *at = isView(user) ? firstRead(user->getResult(0)) : runsAt(user);
      if (at && (!first || position[at] < position[first]))
        first = at;
    }
    return first;
  };
  for (Operation &op : body)
    if (isCollective(&op)) {
      Operation *until = firstRead(op.getResult(0));
      until = until ? until : body.getTerminator();
      // An input of several collectives lives until the last one is awaited.
      Operation *&latest = schedule.readUntil[op.getOperand(0)];
      if (!latest || position[latest] < position[until])
        latest = until;
    }
  return schedule;
}

class CudaFunctionEmitter : StepEmitter {
public:
  CudaFunctionEmitter(func::FuncOp fn, const Schedule &schedule, ArrayRef<int64_t> meshShape,
                      ArrayRef<std::string> axisNames, uint64_t seed, int &nextSlot,
                      raw_ostream &kernels, raw_ostream &body)
      : StepEmitter(fn, planBuffers(fn, 4, schedule), body), schedule_(schedule),
        meshShape_(meshShape), axisNames_(axisNames), seed_(seed), nextSlot_(nextSlot),
        kernels_(kernels) {}

  LogicalResult emit(StringRef cppName) {
    name_ = cppName.str();
    os_ << "void " << cppName
        << "(dtlrt::Context &ctx, void *const *args, void *const *results) {\n";
    os_ << "  (void)ctx;\n  static char *const arena = dtlrt::cuda::deviceArena("
        << plan_.arenaBytes << ");\n";
    declareArguments();
    for (Operation &op : fn_.getBody().front()) {
      if (schedule_.fusedInto.count(&op))
        continue;
      if (failed(emitOp(op)))
        return failure();
    }
    os_ << "  dtlrt::cuda::joinAll();\n}\n\n";
    return success();
  }

private:
  /// The compute stream waits for the collectives that produced `values`.
  void await(ArrayRef<Value> values) {
    for (Value v : values) {
      auto it = pendingSlot_.find(v);
      if (it == pendingSlot_.end())
        continue;
      int slot = it->second;
      os_ << "  dtlrt::cuda::waitFor(" << slot << ");\n";
      // Every value (and view) of that collective is ready now.
      for (auto entry = pendingSlot_.begin(); entry != pendingSlot_.end();) {
        auto current = entry++;
        if (current->second == slot)
          pendingSlot_.erase(current);
      }
    }
  }

  void call(StringRef kernel, ArrayRef<std::string> args) {
    os_ << "  dtlrt::cuda::" << kernel << "(" << llvm::join(args, ", ") << ");\n";
  }

  static std::string vec(ArrayRef<int64_t> values) {
    return "std::vector<int64_t>" + joined(values);
  }
  static std::string axesOf(ArrayRef<int16_t> axes) { return "dtlrt::Axes" + axesList(axes); }

  /// The C++ expression computing `op` from its leaves (values made
  /// outside the fused chain), which are collected in order as x0, x1, ...
  std::string expression(Operation *op, SmallVector<Value> &leaves) {
    return fusedExpression(op, schedule_, "dtlrt::cuda", [&](Value v) {
      auto at = llvm::find(leaves, v);
      if (at == leaves.end())
        leaves.push_back(v), at = leaves.end() - 1;
      return "x" + std::to_string(at - leaves.begin());
    });
  }

  /// One kernel for `root` and the elementwise ops fused into it.
  void emitFused(Operation &root) {
    SmallVector<Value> leaves;
    std::string expr = expression(&root, leaves);
    await(leaves);
    Value result = root.getResult(0);
    std::string out = define(result);
    int64_t n = numElements(result.getType());
    std::string kernel = name_ + "_k" + std::to_string(kernelCount_++);
    std::string type = elementType(result.getType());
    bool vectorized = n % 4 == 0 && type == "real" && llvm::all_of(leaves, [](Value v) {
                        return elementType(v.getType()) == "real";
                      });
    SmallVector<std::string> params, args;
    for (auto [i, leaf] : llvm::enumerate(leaves)) {
      std::string x = "x" + std::to_string(i);
      params.push_back(elementType(leaf.getType()) + " " + x);
      args.push_back(use(leaf));
    }
    // The math once, as a device function of scalars.
    kernels_ << "__device__ __forceinline__ " << type << " " << kernel << "_f("
             << llvm::join(params, ", ") << ") {\n  return " << expr << ";\n}\n";
    SmallVector<std::string> pointers;
    for (auto [i, leaf] : llvm::enumerate(leaves))
      pointers.push_back("const " + elementType(leaf.getType()) + " *__restrict__ in" +
                         std::to_string(i));
    pointers.push_back(type + " *__restrict__ out");
    kernels_ << "__global__ void __launch_bounds__(dtlrt::cuda::kBlock) " << kernel << "("
             << llvm::join(pointers, ", ") << ", int64_t n) {\n"
             << "  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;\n"
             << "       i += int64_t(gridDim.x) * blockDim.x) {\n";
    if (vectorized) {
      static const char lanes[] = "xyzw";
      for (size_t i = 0; i < leaves.size(); ++i)
        kernels_ << "    const float4 v" << i << " = reinterpret_cast<const float4 *>(in" << i
                 << ")[i];\n";
      kernels_ << "    float4 r;\n";
      for (int lane = 0; lane < 4; ++lane) {
        SmallVector<std::string> values;
        for (size_t i = 0; i < leaves.size(); ++i)
          values.push_back("v" + std::to_string(i) + "." + lanes[lane]);
        kernels_ << "    r." << lanes[lane] << " = " << kernel << "_f(" << llvm::join(values, ", ")
                 << ");\n";
      }
      kernels_ << "    reinterpret_cast<float4 *>(out)[i] = r;\n";
    } else {
      SmallVector<std::string> reads;
      for (size_t i = 0; i < leaves.size(); ++i)
        reads.push_back("in" + std::to_string(i) + "[i]");
      kernels_ << "    out[i] = " << kernel << "_f(" << llvm::join(reads, ", ") << ");\n";
    }
    kernels_ << "  }\n}\n\n";
    int64_t items = vectorized ? n / 4 : n;
    args.push_back(out);
    args.push_back(str(items));
    os_ << "  DTLRT_CUDA_LAUNCH(" << kernel << ", " << items << ")(" << llvm::join(args, ", ")
        << ");\n  dtlrt::cuda::checkLaunch(\"" << kernel << "\");\n";
  }

  /// "all_reduce over [dp] (4096 elements)", for error messages.
  std::string describe(StringRef kind, ArrayRef<int16_t> axes, Value input) {
    SmallVector<std::string> names;
    for (int16_t a : axes)
      names.push_back(size_t(a) < axisNames_.size() ? axisNames_[a] : std::to_string(a));
    return quoted((kind + " over [" + llvm::join(names, ", ") + "] of " +
                   std::to_string(numElements(input.getType())) + " elements in " + name_)
                      .str());
  }

  /// A collective on the communication stream: the result is pending until
  /// its first reader waits for it.
  LogicalResult collective(StringRef kind, StringRef method, Operation *op,
                           ArrayRef<std::string> dims, ArrayRef<int16_t> axes) {
    int slot = nextSlot_++;
    Value input = op->getOperand(0), result = op->getResult(0);
    std::string out = define(result);
    std::string type = elementType(result.getType()) == "real" ? "float" : "int32_t";
    SmallVector<std::string> args{"ctx", use(input), out};
    if (kind == "all_reduce")
      args.push_back(str(numElements(input.getType())));
    else
      args.push_back(vec(shapeOf(input)));
    args.append(dims.begin(), dims.end());
    args.push_back(axesOf(axes));
    args.push_back(str(slot));
    args.push_back(describe(kind, axes, input));
    os_ << "  dtlrt::cuda::" << method << "<" << type << ">(" << llvm::join(args, ", ")
        << ");\n";
    pendingSlot_[result] = slot;
    return success();
  }

  void emitGather(Value input, Value result, ArrayRef<int64_t> strides) {
    std::string out = define(result);
    call("broadcast", {use(input), out, vec(shapeOf(result)), vec(strides)});
  }

  LogicalResult emitOp(Operation &op) {
    if (isElementwise(&op)) {
      emitFused(op);
      return success();
    }
    if (!isView(&op))
      await(SmallVector<Value>(op.getOperands()));
    if (emitRowKernel(op, "dtlrt::cuda") || emitView(op))
      return success();
    if (std::optional<GemmCall> gemm = gemmCall(op)) {
      SmallVector<std::string> args = gemm->args;
      args.push_back(gemm->bias.empty() ? "nullptr" : gemm->bias);
      args.push_back(gemm->out);
      call("matmul", args);
      return success();
    }
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        .Case([&](BroadcastOp b) {
          emitGather(b.getInput(), b.getResult(), gatherStrides(b));
          return success();
        })
        .Case([&](TransposeOp t) {
          emitGather(t.getInput(), t.getResult(), gatherStrides(t));
          return success();
        })
        .Case([&](ReduceSumOp r) {
          SmallVector<std::string> reduced(shapeOf(r.getInput()).size(), "false");
          for (int64_t d : r.getDims())
            reduced[d] = "true";
          std::string out = define(r.getResult());
          call("reduceSum", {use(r.getInput()), out, vec(shapeOf(r.getInput())),
                             "std::vector<bool>{" + llvm::join(reduced, ", ") + "}"});
          return success();
        })
        .Case([&](StackOp s) {
          std::string out = define(s.getResult());
          int64_t n = numElements(s.getInputs().front().getType());
          for (auto [i, v] : llvm::enumerate(s.getInputs()))
            call("copy", {use(v), out + " + " + str(i * n), str(n) + " * sizeof(real)"});
          return success();
        })
        .Case([&](DropoutOp d) {
          FailureOr<DropoutLayout> layout = dropoutLayout(d, meshShape_);
          if (failed(layout))
            return failure();
          std::string out = define(d.getResult());
          call("dropout", {use(d.getInput()), out, vec(layout->local), vec(layout->global),
                           "std::vector<int64_t>{" + llvm::join(layout->offsets, ", ") + "}",
                           literal(d.getRate().convertToDouble()), str(seed_) + "ull",
                           str(d.getStream()), use(d.getStep())});
          return success();
        })
        .Case([&](AdamwUpdateOp u) {
          std::string param = define(u.getNewParam()), m = define(u.getNewM()),
                      v = define(u.getNewV());
          call("adamwUpdate",
               {use(u.getParam()), use(u.getGrad()), use(u.getM()), use(u.getV()), use(u.getLr()),
                use(u.getStep()), literal(u.getBeta1().convertToDouble()),
                literal(u.getBeta2().convertToDouble()), literal(u.getEps().convertToDouble()),
                literal(u.getWeightDecay().convertToDouble()), param, m, v,
                str(numElements(u.getParam().getType()))});
          return success();
        })
        .Case([&](SgdUpdateOp u) {
          std::string param = define(u.getNewParam()), buf = define(u.getNewMomentumBuf());
          call("sgdUpdate", {use(u.getParam()), use(u.getGrad()), use(u.getMomentumBuf()),
                             use(u.getLr()), literal(u.getMomentum().convertToDouble()),
                             literal(u.getWeightDecay().convertToDouble()), param, buf,
                             str(numElements(u.getParam().getType()))});
          return success();
        })
        .Case([&](shard::AllReduceOp r) {
          return collective("all_reduce", "allReduceSum", r, {}, r.getGridAxes());
        })
        .Case([&](shard::ReduceScatterOp r) {
          return collective("reduce_scatter", "reduceScatterSum", r,
                            {str(r.getScatterAxis().getZExtValue())}, r.getGridAxes());
        })
        .Case([&](shard::AllToAllOp a) {
          return collective("all_to_all", "allToAll", a,
                            {str(a.getSplitAxis().getZExtValue()),
                             str(a.getConcatAxis().getZExtValue())},
                            a.getGridAxes());
        })
        .Case([&](shard::AllGatherOp g) {
          return collective("all_gather", "allGather", g,
                            {str(g.getGatherAxis().getZExtValue())}, g.getGridAxes());
        })
        .Case([&](shard::AllSliceOp s) {
          std::string out = define(s.getResult());
          std::string type = elementType(s.getResult().getType()) == "real" ? "float" : "int32_t";
          os_ << "  dtlrt::cuda::allSlice<" << type << ">(ctx, " << use(s.getInput()) << ", "
              << out << ", " << vec(shapeOf(s.getInput())) << ", "
              << s.getSliceAxis().getZExtValue() << ", " << axesOf(s.getGridAxes()) << ");\n";
          return success();
        })
        .Case([&](func::ReturnOp r) {
          for (auto [i, v] : llvm::enumerate(r.getOperands()))
            if (!inPlace_.count(v))
              call("copy", {use(v), "results[" + str(i) + "]",
                            str(numElements(v.getType())) + " * sizeof(" +
                                elementType(v.getType()) + ")"});
          return success();
        })
        .Default([&](Operation *other) {
          return other->emitError("the CUDA code generator does not handle this op");
        });
  }

  /// A view of a pending collective's result is pending on it too.
  void defineView(Value v, Value source, int64_t offset) override {
    StepEmitter::defineView(v, source, offset);
    auto it = pendingSlot_.find(source);
    if (it != pendingSlot_.end())
      pendingSlot_[v] = it->second;
  }

  const Schedule &schedule_;
  ArrayRef<int64_t> meshShape_;
  ArrayRef<std::string> axisNames_;
  uint64_t seed_;
  int &nextSlot_;
  raw_ostream &kernels_;
  std::string name_;
  int kernelCount_ = 0;
  DenseMap<Value, int> pendingSlot_;
};

} // namespace

LogicalResult dtl::emitCuda(ModuleOp module, const CudaOptions &options, raw_ostream &os) {
  SmallVector<std::string> axisNames;
  if (MeshAttr mesh = getMesh(module))
    for (StringAttr a : mesh.getNames())
      axisNames.push_back(a.getValue().str());
  int nextSlot = 0;
  ProgramTarget target;
  target.sourceFile = options.sourceFile;
  // dtlc --target=cuda-emulation builds this source as host C++ against an
  // emulation of libdtlrt_cuda (to test the generated code without a GPU).
  target.prelude = "#ifdef DTLRT_CUDA_EMULATION\n#include \"dtlrt/CudaEmulation.h\"\n#else\n"
                   "#include \"dtlrt/Cuda.h\"\n#endif\n#include \"dtlrt/Runtime.h\"\n\n"
                   "#include <cstdint>\n#include <vector>\n";
  target.device = std::string("dtlrt::cuda::device(dtlrt::cuda::GemmMath::") +
                  (options.bf16 ? "BF16" : "F32") + ")";
  target.emitFunction = [&](func::FuncOp fn, StringRef cppName, ArrayRef<int64_t> meshShape,
                            uint64_t seed, raw_ostream &out) {
    std::string kernels, body;
    llvm::raw_string_ostream kernelStream(kernels), bodyStream(body);
    Schedule schedule = scheduleOf(fn);
    if (failed(CudaFunctionEmitter(fn, schedule, meshShape, axisNames, seed, nextSlot,
                                   kernelStream, bodyStream)
                   .emit(cppName)))
      return failure();
    out << kernels << body;
    return success();
  };
  return emitProgram(module, target, os);
}
