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
#include "dialects/dtl/DtlOps.h"
#include "passes/Passes.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace dtl;

namespace {

/// Elementwise ops of size at least this run on all threads.
constexpr int64_t kParallelThreshold = 32768;

std::string quoted(StringRef s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string joined(ArrayRef<int64_t> values) {
  return "{" + llvm::join(llvm::map_range(values, [](int64_t v) { return std::to_string(v); }), ", ") + "}";
}

/// A double as a C++ literal that reads back exactly.
std::string literal(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

int64_t numElements(Type t) { return cast<RankedTensorType>(t).getNumElements(); }

/// A C++ identifier from a user's name.
std::string identifier(StringRef name) {
  std::string s;
  for (char c : name)
    s += llvm::isAlnum(c) ? c : '_';
  return s;
}

class FunctionEmitter {
public:
  FunctionEmitter(func::FuncOp fn, int64_t realBytes, ArrayRef<int64_t> meshShape,
                  uint64_t seed, raw_ostream &os)
      : fn_(fn), os_(os), plan_(planBuffers(fn, realBytes)), inPlace_(inPlaceResults(fn)),
        meshShape_(meshShape), seed_(seed) {}

  LogicalResult emit(StringRef cppName) {
    os_ << "void " << cppName
        << "(dtlrt::Context &ctx, void *const *args, void *const *results) {\n";
    os_ << "  (void)ctx;\n  static char *const arena = dtlrt::stepBuffer<char>(" << plan_.arenaBytes
        << ");\n";
    for (BlockArgument arg : fn_.getArguments()) {
      std::string name = "a" + std::to_string(arg.getArgNumber());
      if (auto n = fn_.getArgAttrOfType<StringAttr>(arg.getArgNumber(), attr::name))
        name += "_" + identifier(n.getValue());
      os_ << "  const " << elementType(arg.getType()) << " *" << name << " = static_cast<const "
          << elementType(arg.getType()) << " *>(args[" << arg.getArgNumber() << "]);\n";
      names_[arg] = name;
    }
    for (Operation &op : fn_.getBody().front()) {
      if (failed(emitOp(op)))
        return failure();
    }
    os_ << "}\n\n";
    return success();
  }

private:
  static std::string elementType(Type t) {
    return cast<RankedTensorType>(t).getElementType().isInteger(32) ? "int32_t" : "real";
  }

  /// `v`'s place in the arena (or its result buffer), named and remembered.
  std::string define(Value v) {
    std::string name = "t" + std::to_string(next_++);
    std::string type = elementType(v.getType());
    auto inPlace = inPlace_.find(v);
    if (inPlace != inPlace_.end())
      os_ << "  " << type << " *const " << name << " = static_cast<" << type << " *>(results["
          << inPlace->second << "]);\n";
    else
      os_ << "  " << type << " *const " << name << " = reinterpret_cast<" << type
          << " *>(arena + " << plan_.offsets.lookup(v) << ");\n";
    names_[v] = name;
    return name;
  }

  const std::string &use(Value v) { return names_.at(v); }

  /// `v` as a read-only pointer into `source`'s buffer, `offset` elements in.
  void defineView(Value v, Value source, int64_t offset) {
    std::string name = "t" + std::to_string(next_++);
    os_ << "  const " << elementType(v.getType()) << " *const " << name << " = " << use(source)
        << " + " << offset << ";\n";
    names_[v] = name;
  }

  /// A call `dtlrt::kernel(args...)` whose arguments are given in order;
  /// results are defined first.
  void call(StringRef kernel, ArrayRef<std::string> args) {
    os_ << "  dtlrt::" << kernel << "(" << llvm::join(args, ", ") << ");\n";
  }

  static std::string str(int64_t v) { return std::to_string(v); }

  static std::string shapeOf(Value v) {
    return joined(cast<RankedTensorType>(v.getType()).getShape());
  }

  /// out[i] = expr, where `$k` in expr stands for operand k at [i].
  void elementwise(Operation &op, StringRef expr) {
    std::string body = expr.str();
    for (unsigned k = 0; k < op.getNumOperands(); ++k) {
      std::string placeholder = "$" + std::to_string(k);
      std::string replacement = use(op.getOperand(k)) + "[i]";
      for (size_t at; (at = body.find(placeholder)) != std::string::npos;)
        body.replace(at, placeholder.size(), replacement);
    }
    std::string out = define(op.getResult(0));
    int64_t n = numElements(op.getResult(0).getType());
    if (n >= kParallelThreshold)
      os_ << "#pragma omp parallel for simd\n";
    os_ << "  for (int64_t i = 0; i < " << n << "; ++i)\n    " << out << "[i] = " << body << ";\n";
  }

  static std::string axesOf(ArrayRef<int16_t> axes) {
    return "dtlrt::Axes" + joined(SmallVector<int64_t>(axes.begin(), axes.end()));
  }

  /// ctx.method(input, result, {input shape}, dims..., axes): the shape-
  /// aware collectives of the runtime's Context.
  LogicalResult collective(StringRef method, Operation *op, ArrayRef<uint64_t> dims,
                           ArrayRef<int16_t> axes) {
    std::string result = define(op->getResult(0));
    os_ << "  ctx." << method << "(" << use(op->getOperand(0)) << ", " << result
        << ", std::vector<int64_t>" << shapeOf(op->getOperand(0));
    for (uint64_t d : dims)
      os_ << ", " << d;
    os_ << ", " << axesOf(axes) << ");\n";
    return success();
  }

  /// dtlrt::matmul or matmulBias; an lhs [M..., K] is a matrix of prod(M...) rows.
  LogicalResult emitMatmul(Value lhs, Value rhs, Value bias, Value result, bool ta, bool tb) {
    ArrayRef<int64_t> a = cast<RankedTensorType>(lhs.getType()).getShape();
    auto [rows, n] = rowsAndLast(result);
    int64_t k = ta ? a[0] : a.back();
    std::string out = define(result);
    SmallVector<std::string> args{ta ? "true" : "false", tb ? "true" : "false", str(rows), str(n),
                                  str(k), use(lhs), use(rhs)};
    if (bias)
      args.push_back(use(bias));
    args.push_back(out);
    call(bias ? "matmulBias" : "matmul", args);
    return success();
  }

  /// (product of the leading dims, last dim) of `v`'s local shape.
  static std::pair<int64_t, int64_t> rowsAndLast(Value v) {
    auto type = cast<RankedTensorType>(v.getType());
    int64_t last = type.getShape().back();
    return {type.getNumElements() / last, last};
  }

  /// Dropout draws its mask by global index: the partitioner leaves the
  /// input's layout on the op, from which each rank finds its offsets.
  LogicalResult emitDropout(DropoutOp d) {
    auto layouts = d->getAttrOfType<ArrayAttr>(attr::shardings);
    if (!layouts)
      return d.emitError("dropout needs its layout (`dtl.shardings`) from dtl-partition");
    auto layout = cast<ShardingAttr>(layouts[0]);
    ArrayRef<int64_t> local = cast<RankedTensorType>(d.getInput().getType()).getShape();
    SmallVector<int64_t> global(local);
    SmallVector<std::string> offsets;
    for (auto [i, axes] : llvm::enumerate(layout.getDims())) {
      SmallVector<int64_t> list(axes.asArrayRef().begin(), axes.asArrayRef().end());
      for (int64_t a : list)
        global[i] *= meshShape_[a];
      offsets.push_back(list.empty() ? "0"
                                     : "int64_t(ctx.indexAlong(" + axesOf(axes.asArrayRef()) +
                                           ")) * " + str(local[i]));
    }
    std::string result = define(d.getResult());
    os_ << "  { static const int64_t local[] = " << joined(local) << ", global[] = "
        << joined(global) << ";\n    const int64_t offsets[] = {" << llvm::join(offsets, ", ")
        << "};\n    dtlrt::dropout(" << use(d.getInput()) << ", " << result << ", "
        << local.size() << ", local, global, offsets, "
        << literal(d.getRate().convertToDouble()) << ", " << seed_ << "ull, " << d.getStream()
        << ", int64_t(" << use(d.getStep()) << "[0])); }\n";
    return success();
  }

  LogicalResult emitOp(Operation &op) {
    auto rankedShape = [](Value v) { return cast<RankedTensorType>(v.getType()).getShape(); };
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        .Case([&](ConstantOp c) {
          elementwise(op, "real(" + literal(c.getValue().convertToDouble()) + ")");
          return success();
        })
        .Case([&](AddOp) { return elementwise(op, "$0 + $1"), success(); })
        .Case([&](SubOp) { return elementwise(op, "$0 - $1"), success(); })
        .Case([&](MulOp) { return elementwise(op, "$0 * $1"), success(); })
        .Case([&](DivOp) { return elementwise(op, "$0 / $1"), success(); })
        .Case([&](NegOp) { return elementwise(op, "-$0"), success(); })
        .Case([&](ReluOp) { return elementwise(op, "$0 > real(0) ? $0 : real(0)"), success(); })
        .Case([&](ReluGradOp) { return elementwise(op, "$0 > real(0) ? $1 : real(0)"), success(); })
        .Case([&](ExpOp) { return elementwise(op, "std::exp($0)"), success(); })
        .Case([&](LogOp) { return elementwise(op, "std::log($0)"), success(); })
        .Case([&](TanhOp) { return elementwise(op, "std::tanh($0)"), success(); })
        .Case([&](SqrtOp) { return elementwise(op, "std::sqrt($0)"), success(); })
        .Case([&](BroadcastOp b) {
          // Input strides in result-dimension space: 0 where the input repeats.
          ArrayRef<int64_t> in = rankedShape(b.getInput()), out = rankedShape(b.getResult());
          SmallVector<int64_t> strides(out.size(), 0);
          int64_t stride = 1;
          for (int64_t i = (int64_t)in.size() - 1; i >= 0; --i) {
            if (in[i] == out[b.getDims()[i]])
              strides[b.getDims()[i]] = stride;
            stride *= in[i];
          }
          std::string result = define(b.getResult());
          os_ << "  { static const int64_t shape[] = " << joined(out)
              << ", strides[] = " << joined(strides) << ";\n    dtlrt::broadcast(" << use(b.getInput())
              << ", " << result << ", shape, strides, " << out.size() << "); }\n";
          return success();
        })
        .Case([&](ReduceSumOp r) {
          ArrayRef<int64_t> in = rankedShape(r.getInput());
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
        .Case([&](MatmulOp m) {
          return emitMatmul(m.getLhs(), m.getRhs(), Value(), m.getResult(), m.getTransposeLhs(),
                            m.getTransposeRhs());
        })
        .Case([&](MatmulBiasOp m) {
          return emitMatmul(m.getLhs(), m.getRhs(), m.getBias(), m.getResult(),
                            m.getTransposeLhs(), m.getTransposeRhs());
        })
        .Case([&](CrossEntropyOp c) {
          auto [rows, classes] = rowsAndLast(c.getLogits());
          std::string result = define(c.getResult());
          os_ << "  dtlrt::crossEntropy(" << use(c.getLogits()) << ", " << use(c.getLabels())
              << ", " << result << ", " << rows << ", " << classes << ");\n";
          return success();
        })
        .Case([&](CrossEntropyGradOp c) {
          auto [rows, classes] = rowsAndLast(c.getLogits());
          std::string result = define(c.getResult());
          os_ << "  dtlrt::crossEntropyGrad(" << use(c.getLogits()) << ", " << use(c.getLabels())
              << ", " << use(c.getGrad()) << ", " << result << ", " << rows << ", " << classes
              << ");\n";
          return success();
        })
        .Case([&](CorrectOp c) {
          auto [rows, classes] = rowsAndLast(c.getLogits());
          std::string result = define(c.getResult());
          os_ << "  dtlrt::correct(" << use(c.getLogits()) << ", " << use(c.getLabels()) << ", "
              << result << ", " << rows << ", " << classes << ");\n";
          return success();
        })
        .Case([&](GeluOp) { return elementwise(op, "dtlrt::gelu($0)"), success(); })
        .Case([&](GeluGradOp) { return elementwise(op, "dtlrt::geluGrad($0, $1)"), success(); })
        .Case([&](SoftmaxOp s) {
          auto [rows, n] = rowsAndLast(s.getInput());
          std::string result = define(s.getResult());
          call("softmax", {use(s.getInput()), result, str(rows), str(n)});
          return success();
        })
        .Case([&](SoftmaxGradOp s) {
          auto [rows, n] = rowsAndLast(s.getOutput());
          std::string result = define(s.getResult());
          call("softmaxGrad", {use(s.getOutput()), use(s.getGrad()), result, str(rows), str(n)});
          return success();
        })
        .Case([&](LayerNormOp l) {
          auto [rows, n] = rowsAndLast(l.getInput());
          std::string result = define(l.getResult()), mean = define(l.getMean()),
                      rstd = define(l.getRstd());
          call("layerNorm", {use(l.getInput()), use(l.getWeight()), use(l.getBias()),
                             literal(l.getEps().convertToDouble()), result, mean, rstd, str(rows),
                             str(n)});
          return success();
        })
        .Case([&](LayerNormGradInputOp l) {
          auto [rows, n] = rowsAndLast(l.getInput());
          std::string result = define(l.getResult());
          call("layerNormGradInput", {use(l.getInput()), use(l.getWeight()), use(l.getMean()),
                                      use(l.getRstd()), use(l.getGrad()), result, str(rows),
                                      str(n)});
          return success();
        })
        .Case([&](LayerNormGradParamsOp l) {
          auto [rows, n] = rowsAndLast(l.getInput());
          std::string dw = define(l.getWeightGrad()), db = define(l.getBiasGrad());
          call("layerNormGradParams", {use(l.getInput()), use(l.getMean()), use(l.getRstd()),
                                       use(l.getGrad()), dw, db, str(rows), str(n)});
          return success();
        })
        .Case([&](EmbeddingOp e) {
          ArrayRef<int64_t> table = rankedShape(e.getTable());
          std::string result = define(e.getResult());
          call("embedding", {use(e.getTable()), use(e.getIndices()), result,
                             str(numElements(e.getIndices().getType())), str(table[0]),
                             str(table[1])});
          return success();
        })
        .Case([&](EmbeddingGradOp e) {
          ArrayRef<int64_t> table = rankedShape(e.getResult());
          std::string result = define(e.getResult());
          call("embeddingGrad", {use(e.getIndices()), use(e.getGrad()), result,
                                 str(numElements(e.getIndices().getType())), str(table[0]),
                                 str(table[1])});
          return success();
        })
        .Case([&](CausalAttentionOp a) {
          ArrayRef<int64_t> q = rankedShape(a.getQ());
          // Local heads: the channels may be split into whole heads.
          int64_t heads = rankedShape(a.getProbs())[1];
          std::string result = define(a.getResult()), probs = define(a.getProbs());
          call("causalAttention", {use(a.getQ()), use(a.getK()), use(a.getV()), result, probs,
                                   str(q[0]), str(q[1]), str(q[2]), str(heads)});
          return success();
        })
        .Case([&](CausalAttentionGradOp a) {
          ArrayRef<int64_t> q = rankedShape(a.getQ());
          int64_t heads = rankedShape(a.getProbs())[1];
          std::string dq = define(a.getQGrad()), dk = define(a.getKGrad()),
                      dv = define(a.getVGrad());
          call("causalAttentionGrad", {use(a.getQ()), use(a.getK()), use(a.getV()),
                                       use(a.getProbs()), use(a.getGrad()), dq, dk, dv, str(q[0]),
                                       str(q[1]), str(q[2]), str(heads)});
          return success();
        })
        .Case([&](ReshapeOp r) {
          defineView(r.getResult(), r.getInput(), 0);
          return success();
        })
        .Case([&](LayerOp l) {
          defineView(l.getResult(), l.getInput(),
                     l.getIndex() * numElements(l.getResult().getType()));
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
          // A strided gather: result dim i walks input dim perm[i].
          ArrayRef<int64_t> in = rankedShape(t.getInput()), out = rankedShape(t.getResult());
          SmallVector<int64_t> inStrides(in.size()), strides;
          for (int64_t d = (int64_t)in.size() - 1, stride = 1; d >= 0; stride *= in[d--])
            inStrides[d] = stride;
          for (int64_t p : t.getPermutation())
            strides.push_back(inStrides[p]);
          std::string result = define(t.getResult());
          os_ << "  { static const int64_t shape[] = " << joined(out)
              << ", strides[] = " << joined(strides) << ";\n    dtlrt::broadcast(" << use(t.getInput())
              << ", " << result << ", shape, strides, " << out.size() << "); }\n";
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

  func::FuncOp fn_;
  raw_ostream &os_;
  DenseMap<Value, std::string> names_;
  int next_ = 0;
  BufferPlan plan_;
  DenseMap<Value, unsigned> inPlace_;
  ArrayRef<int64_t> meshShape_;
  uint64_t seed_;
};

class ProgramEmitter {
public:
  ProgramEmitter(ModuleOp module, const CppOptions &options, raw_ostream &os)
      : module_(module), options_(options), os_(os), mesh_(getMesh(module)) {}

  LogicalResult emit() {
    auto model = module_->getAttrOfType<FlatSymbolRefAttr>(attr::model);
    auto train = module_->getAttrOfType<DictionaryAttr>(attr::train);
    if (!mesh_ || !model)
      return module_.emitError("codegen needs a partitioned module with a mesh and `dtl.model`");
    auto trainStep = module_.lookupSymbol<func::FuncOp>("train_step");
    auto forward = module_.lookupSymbol<func::FuncOp>(model.getValue());
    auto grad = module_.lookupSymbol<func::FuncOp>((model.getValue() + "_grad").str());
    if (!trainStep || !forward || !train)
      return module_.emitError("codegen needs @train_step, the model's forward function and a "
                               "train section");

    os_ << "// Generated by dtlc from " << options_.sourceFile << ". Do not edit.\n"
        << "#include \"dtlrt/Context.h\"\n#include \"dtlrt/Kernels.h\"\n"
        << "#include \"dtlrt/Runtime.h\"\n\n#include <cmath>\n#include <cstdint>\n"
        << "#include <cstring>\n#include <vector>\n\n"
        << "using real = " << (options_.f64 ? "double" : "float") << ";\n\nnamespace {\n\n";
    auto seed = train.getAs<IntegerAttr>("seed");
    for (func::FuncOp fn : {forward, grad, trainStep})
      if (fn && failed(FunctionEmitter(fn, options_.f64 ? 8 : 4, mesh_.getShape(),
                                       seed ? seed.getInt() : 0, os_)
                                .emit("step_" + identifier(fn.getSymName()))))
        return failure();
    os_ << "} // namespace\n\nint main(int argc, char **argv) {\n  dtlrt::Program p;\n";
    os_ << "  p.name = " << quoted(model.getValue()) << ";\n  p.sourceFile = "
        << quoted(options_.sourceFile) << ";\n";
    auto axisNames = mesh_->getAttrOfType<ArrayAttr>("dtl.axis_names");
    SmallVector<std::string> names;
    for (Attribute a : axisNames)
      names.push_back(quoted(cast<StringAttr>(a).getValue()));
    os_ << "  p.axisNames = {" << llvm::join(names, ", ") << "};\n  p.axisSizes = "
        << joined(mesh_.getShape()) << ";\n";
    emitStep("trainStep", trainStep);
    emitStep("evalStep", forward);
    if (grad)
      emitStep("gradStep", grad);
    emitTrainConfig(train);
    os_ << "  return dtlrt::run(p, argc, argv);\n}\n";
    return success();
  }

private:
  std::string dtype(Type element) const {
    if (element.isInteger(32))
      return "dtlrt::DType::I32";
    return options_.f64 ? "dtlrt::DType::F64" : "dtlrt::DType::F32";
  }

  std::string spec(DictionaryAttr attrs, RankedTensorType local) const {
    auto str = [&](StringRef key) {
      auto s = attrs ? attrs.getAs<StringAttr>(key) : StringAttr();
      return quoted(s ? s.getValue() : "");
    };
    SmallVector<int64_t> global(local.getShape());
    SmallVector<std::string> dimAxes(local.getRank(), "{}");
    if (auto s = attrs ? attrs.getAs<ShardingAttr>(attr::sharding) : ShardingAttr()) {
      for (auto [d, axes] : llvm::enumerate(s.getDims())) {
        SmallVector<int64_t> list(axes.asArrayRef().begin(), axes.asArrayRef().end());
        dimAxes[d] = joined(list);
        for (int64_t a : list)
          global[d] *= shard::GridOp(mesh_).getShape()[a];
      }
    }
    std::string init = "\"zeros\"", a = "0", b = "0";
    if (auto i = attrs ? attrs.getAs<DictionaryAttr>(attr::init) : DictionaryAttr()) {
      init = quoted(i.getAs<StringAttr>("kind").getValue());
      auto number = [&](StringRef key) {
        auto f = i.getAs<FloatAttr>(key);
        return f ? literal(f.getValueAsDouble()) : std::string("0");
      };
      bool normal = i.getAs<StringAttr>("kind").getValue() == "normal";
      a = number(normal ? "mean" : "low");
      b = number(normal ? "std" : "high");
    }
    return "{" + str(attr::role) + ", " + str(attr::name) + ", " + dtype(local.getElementType()) +
           ", " + joined(global) + ", " + joined(local.getShape()) + ", {" +
           llvm::join(dimAxes, ", ") + "}, " + init + ", " + a + ", " + b + "}";
  }

  void emitStep(StringRef field, func::FuncOp fn) {
    os_ << "  p." << field << ".fn = step_" << identifier(fn.getSymName()) << ";\n";
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      os_ << "  p." << field << ".args.push_back("
          << spec(fn.getArgAttrDict(i), cast<RankedTensorType>(fn.getArgumentTypes()[i]))
          << ");\n";
    for (unsigned i = 0; i < fn.getNumResults(); ++i)
      os_ << "  p." << field << ".results.push_back("
          << spec(fn.getResultAttrDict(i), cast<RankedTensorType>(fn.getResultTypes()[i]))
          << ");\n";
  }

  void emitData(StringRef field, DictionaryAttr data) {
    if (!data)
      return;
    auto strings = [&](StringRef key) {
      SmallVector<std::string> out;
      if (auto list = data.getAs<ArrayAttr>(key))
        for (Attribute a : list)
          out.push_back(quoted(cast<StringAttr>(a).getValue()));
      return "{" + llvm::join(out, ", ") + "}";
    };
    os_ << "  p." << field << ".source = " << quoted(data.getAs<StringAttr>("source").getValue())
        << ";\n  p." << field << ".inputs = " << strings("inputs") << ";\n  p." << field
        << ".files = " << strings("files") << ";\n";
    for (StringRef key : {"classes", "size"})
      if (auto n = data.getAs<IntegerAttr>(key))
        os_ << "  p." << field << "." << key << " = " << n.getInt() << ";\n";
  }

  void emitTrainConfig(DictionaryAttr train) {
    emitData("data", train.getAs<DictionaryAttr>("data"));
    emitData("eval", train.getAs<DictionaryAttr>("eval"));
    static const std::pair<StringRef, StringRef> fields[] = {
        {"steps", "steps"}, {"log_every", "logEvery"}, {"eval_every", "evalEvery"},
        {"seed", "seed"},   {"lr", "lr"},              {"min_lr", "minLr"},
        {"warmup", "warmup"},  {"eval_batches", "evalBatches"}};
    for (auto [key, field] : fields) {
      if (auto n = train.getAs<IntegerAttr>(key))
        os_ << "  p." << field << " = " << n.getInt() << ";\n";
      if (auto f = train.getAs<FloatAttr>(key))
        os_ << "  p." << field << " = " << literal(f.getValueAsDouble()) << ";\n";
    }
    if (auto s = train.getAs<StringAttr>("schedule"))
      os_ << "  p.schedule = " << quoted(s.getValue()) << ";\n";
  }

  ModuleOp module_;
  const CppOptions &options_;
  raw_ostream &os_;
  shard::GridOp mesh_;
};

} // namespace

LogicalResult dtl::emitCpp(ModuleOp module, const CppOptions &options, raw_ostream &os) {
  return ProgramEmitter(module, options, os).emit();
}
