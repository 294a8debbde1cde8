//===- StepEmitter.cpp - what the CPU and CUDA code generators share ------===//

#include "codegen/StepEmitter.h"
#include "dialects/dtl/Contract.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace dtl;

namespace dtl::emit {

/// A C++ identifier from a user's name.
std::string identifier(StringRef name) {
  std::string s;
  for (char c : name)
    s += llvm::isAlnum(c) ? c : '_';
  return s;
}

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

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }

std::pair<int64_t, int64_t> rowsAndLast(Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t last = type.getShape().back();
  return {type.getNumElements() / last, last};
}

SmallVector<int64_t> gatherStrides(BroadcastOp b) {
  ArrayRef<int64_t> in = shapeOf(b.getInput()), out = shapeOf(b.getResult());
  SmallVector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (int64_t i = (int64_t)in.size() - 1; i >= 0; --i) {
    if (in[i] == out[b.getDims()[i]])
      strides[b.getDims()[i]] = stride;
    stride *= in[i];
  }
  return strides;
}

SmallVector<int64_t> gatherStrides(TransposeOp t) {
  ArrayRef<int64_t> in = shapeOf(t.getInput());
  SmallVector<int64_t> inStrides(in.size()), strides;
  for (int64_t d = (int64_t)in.size() - 1, stride = 1; d >= 0; stride *= in[d--])
    inStrides[d] = stride;
  for (int64_t p : t.getPermutation())
    strides.push_back(inStrides[p]);
  return strides;
}

std::string axesList(ArrayRef<int16_t> axes) {
  return joined(SmallVector<int64_t>(axes.begin(), axes.end()));
}

FailureOr<DropoutLayout> dropoutLayout(DropoutOp d, ArrayRef<int64_t> meshShape) {
  auto layouts = d->getAttrOfType<ArrayAttr>(attr::shardings);
  if (!layouts)
    return d.emitError("dropout needs its layout (`dtl.shardings`) from dtl-partition");
  auto layout = cast<ShardingAttr>(layouts[0]);
  DropoutLayout out;
  out.local.assign(shapeOf(d.getInput()).begin(), shapeOf(d.getInput()).end());
  out.global = out.local;
  for (auto [i, axes] : llvm::enumerate(layout.getDims())) {
    for (int16_t a : axes.asArrayRef())
      out.global[i] *= meshShape[a];
    out.offsets.push_back(axes.empty() ? "0"
                                       : "int64_t(ctx.indexAlong(dtlrt::Axes" +
                                             axesList(axes.asArrayRef()) + ")) * " +
                                             std::to_string(out.local[i]));
  }
  return out;
}

StepEmitter::StepEmitter(func::FuncOp fn, BufferPlan plan, raw_ostream &os)
    : fn_(fn), os_(os), plan_(std::move(plan)), inPlace_(inPlaceResults(fn)) {}

std::string StepEmitter::elementType(Type t) {
  return cast<RankedTensorType>(t).getElementType().isInteger(32) ? "int32_t" : "real";
}

void StepEmitter::declareArguments() {
  for (BlockArgument arg : fn_.getArguments()) {
    std::string name = "a" + std::to_string(arg.getArgNumber());
    if (StringRef n = argName(fn_, arg.getArgNumber()); !n.empty())
      name += "_" + identifier(n);
    os_ << "  const " << elementType(arg.getType()) << " *" << name << " = static_cast<const "
        << elementType(arg.getType()) << " *>(args[" << arg.getArgNumber() << "]);\n";
    names_[arg] = name;
  }
}

std::string StepEmitter::define(Value v) {
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

void StepEmitter::defineView(Value v, Value source, int64_t offset) {
  std::string name = "t" + std::to_string(next_++);
  os_ << "  const " << elementType(v.getType()) << " *const " << name << " = " << use(source)
      << " + " << offset << ";\n";
  names_[v] = name;
}

bool StepEmitter::emitView(Operation &op) {
  if (auto r = dyn_cast<ReshapeOp>(op))
    defineView(r.getResult(), r.getInput(), 0);
  else if (auto l = dyn_cast<LayerOp>(op))
    defineView(l.getResult(), l.getInput(), l.getIndex() * numElements(l.getResult().getType()));
  else
    return false;
  return true;
}

std::optional<StepEmitter::GemmCall> StepEmitter::gemmCall(Operation &op) {
  auto make = [&](Value lhs, Value rhs, Value bias, Value result, bool ta, bool tb) {
    // An lhs [M..., K] is a matrix of prod(M...) rows.
    auto [rows, n] = rowsAndLast(result);
    int64_t k = ta ? shapeOf(lhs)[0] : shapeOf(lhs).back();
    GemmCall call;
    call.args = {ta ? "true" : "false", tb ? "true" : "false", str(rows), str(n), str(k),
                 use(lhs), use(rhs)};
    call.bias = bias ? use(bias) : "";
    call.out = define(result);
    return call;
  };
  if (auto m = dyn_cast<MatmulOp>(op))
    return make(m.getLhs(), m.getRhs(), Value(), m.getResult(), m.getTransposeLhs(),
                m.getTransposeRhs());
  if (auto m = dyn_cast<MatmulBiasOp>(op))
    return make(m.getLhs(), m.getRhs(), m.getBias(), m.getResult(), m.getTransposeLhs(),
                m.getTransposeRhs());
  return std::nullopt;
}

bool StepEmitter::emitRowKernel(Operation &op, StringRef ns) {
  auto call = [&](StringRef kernel, ArrayRef<std::string> args) {
    os_ << "  " << ns << "::" << kernel << "(" << llvm::join(args, ", ") << ");\n";
  };
  return llvm::TypeSwitch<Operation *, bool>(&op)
      .Case([&](CrossEntropyOp c) {
        auto [rows, classes] = rowsAndLast(c.getLogits());
        std::string result = define(c.getResult());
        call("crossEntropy", {use(c.getLogits()), use(c.getLabels()), result, str(rows),
                              str(classes)});
        return true;
      })
      .Case([&](CrossEntropyGradOp c) {
        auto [rows, classes] = rowsAndLast(c.getLogits());
        std::string result = define(c.getResult());
        call("crossEntropyGrad", {use(c.getLogits()), use(c.getLabels()), use(c.getGrad()),
                                  result, str(rows), str(classes)});
        return true;
      })
      .Case([&](CorrectOp c) {
        auto [rows, classes] = rowsAndLast(c.getLogits());
        std::string result = define(c.getResult());
        call("correct", {use(c.getLogits()), use(c.getLabels()), result, str(rows),
                         str(classes)});
        return true;
      })
      .Case([&](SoftmaxOp s) {
        auto [rows, n] = rowsAndLast(s.getInput());
        std::string result = define(s.getResult());
        call("softmax", {use(s.getInput()), result, str(rows), str(n)});
        return true;
      })
      .Case([&](SoftmaxGradOp s) {
        auto [rows, n] = rowsAndLast(s.getOutput());
        std::string result = define(s.getResult());
        call("softmaxGrad", {use(s.getOutput()), use(s.getGrad()), result, str(rows), str(n)});
        return true;
      })
      .Case([&](LayerNormOp l) {
        auto [rows, n] = rowsAndLast(l.getInput());
        std::string result = define(l.getResult()), mean = define(l.getMean()),
                    rstd = define(l.getRstd());
        call("layerNorm", {use(l.getInput()), use(l.getWeight()), use(l.getBias()),
                           literal(l.getEps().convertToDouble()), result, mean, rstd, str(rows),
                           str(n)});
        return true;
      })
      .Case([&](LayerNormGradInputOp l) {
        auto [rows, n] = rowsAndLast(l.getInput());
        std::string result = define(l.getResult());
        call("layerNormGradInput", {use(l.getInput()), use(l.getWeight()), use(l.getMean()),
                                    use(l.getRstd()), use(l.getGrad()), result, str(rows),
                                    str(n)});
        return true;
      })
      .Case([&](LayerNormGradParamsOp l) {
        auto [rows, n] = rowsAndLast(l.getInput());
        std::string dw = define(l.getWeightGrad()), db = define(l.getBiasGrad());
        call("layerNormGradParams", {use(l.getInput()), use(l.getMean()), use(l.getRstd()),
                                     use(l.getGrad()), dw, db, str(rows), str(n)});
        return true;
      })
      .Case([&](EmbeddingOp e) {
        ArrayRef<int64_t> table = shapeOf(e.getTable());
        std::string result = define(e.getResult());
        call("embedding", {use(e.getTable()), use(e.getIndices()), result,
                           str(numElements(e.getIndices().getType())), str(table[0]),
                           str(table[1])});
        return true;
      })
      .Case([&](EmbeddingGradOp e) {
        ArrayRef<int64_t> table = shapeOf(e.getResult());
        std::string result = define(e.getResult());
        call("embeddingGrad", {use(e.getIndices()), use(e.getGrad()), result,
                               str(numElements(e.getIndices().getType())), str(table[0]),
                               str(table[1])});
        return true;
      })
      .Case([&](CausalAttentionOp a) {
        ArrayRef<int64_t> q = shapeOf(a.getQ());
        // Local heads: the channels may be split into whole heads.
        int64_t heads = shapeOf(a.getProbs())[1];
        std::string result = define(a.getResult()), probs = define(a.getProbs());
        call("causalAttention", {use(a.getQ()), use(a.getK()), use(a.getV()), result, probs,
                                 str(q[0]), str(q[1]), str(q[2]), str(heads)});
        return true;
      })
      .Case([&](CausalAttentionGradOp a) {
        ArrayRef<int64_t> q = shapeOf(a.getQ());
        int64_t heads = shapeOf(a.getProbs())[1];
        std::string dq = define(a.getQGrad()), dk = define(a.getKGrad()),
                    dv = define(a.getVGrad());
        call("causalAttentionGrad", {use(a.getQ()), use(a.getK()), use(a.getV()),
                                     use(a.getProbs()), use(a.getGrad()), dq, dk, dv, str(q[0]),
                                     str(q[1]), str(q[2]), str(heads)});
        return true;
      })
      .Default([](Operation *) { return false; });
}

namespace {

class ProgramEmitter {
public:
  ProgramEmitter(ModuleOp module, const ProgramTarget &target, raw_ostream &os)
      : module_(module), target_(target), os_(os), mesh_(getMesh(module)) {}

  LogicalResult emit() {
    auto model = module_->getAttrOfType<FlatSymbolRefAttr>(attr::model);
    auto train = module_->getAttrOfType<TrainAttr>(attr::train);
    auto optimizer = module_->getAttrOfType<OptimizerAttr>(attr::optimizer);
    if (!mesh_ || !model)
      return module_.emitError("codegen needs a partitioned module with a mesh and `dtl.model`");
    auto trainStep = module_.lookupSymbol<func::FuncOp>("train_step");
    auto forward = module_.lookupSymbol<func::FuncOp>(model.getValue());
    auto grad = module_.lookupSymbol<func::FuncOp>((model.getValue() + "_grad").str());
    if (!trainStep || !forward || !train || !optimizer)
      return module_.emitError("codegen needs @train_step, the model's forward function and a "
                               "train section");

    os_ << "// Generated by dtlc from " << target_.sourceFile << ". Do not edit.\n"
        << target_.prelude << "\nusing real = " << (target_.f64 ? "double" : "float")
        << ";\n\nnamespace {\n\n";
    for (func::FuncOp fn : {forward, grad, trainStep})
      if (fn && failed(target_.emitFunction(fn, "step_" + identifier(fn.getSymName()),
                                            mesh_.getSizes(), train.getSeed(), os_)))
        return failure();
    os_ << "} // namespace\n\nint main(int argc, char **argv) {\n  dtlrt::Program p;\n";
    os_ << "  p.name = " << quoted(model.getValue()) << ";\n  p.sourceFile = "
        << quoted(target_.sourceFile) << ";\n";
    if (!target_.device.empty())
      os_ << "  p.device = " << target_.device << ";\n";
    SmallVector<std::string> names;
    for (StringAttr a : mesh_.getNames())
      names.push_back(quoted(a.getValue()));
    os_ << "  p.axisNames = {" << llvm::join(names, ", ") << "};\n  p.axisSizes = "
        << joined(mesh_.getSizes()) << ";\n";
    emitStep("trainStep", trainStep);
    emitStep("evalStep", forward);
    if (grad)
      emitStep("gradStep", grad);
    emitTrainConfig(train, optimizer);
    os_ << "  return dtlrt::run(p, argc, argv);\n}\n";
    return success();
  }

private:
  std::string dtype(Type element) const {
    if (element.isInteger(32))
      return "dtlrt::DType::I32";
    return target_.f64 ? "dtlrt::DType::F64" : "dtlrt::DType::F32";
  }

  static std::string roleName(std::optional<Role> role) {
    switch (role.value_or(Role::input)) {
    case Role::param: return "dtlrt::Role::Param";
    case Role::input: return "dtlrt::Role::Input";
    case Role::opt_state: return "dtlrt::Role::OptState";
    case Role::lr: return "dtlrt::Role::Lr";
    case Role::step: return "dtlrt::Role::Step";
    case Role::loss: return "dtlrt::Role::Loss";
    case Role::grad_norm: return "dtlrt::Role::GradNorm";
    case Role::grad: return "dtlrt::Role::Grad";
    case Role::correct: return "dtlrt::Role::Correct";
    }
    llvm_unreachable("unknown role");
  }

  static std::string initName(InitKind kind) {
    switch (kind) {
    case InitKind::zeros: return "dtlrt::Init::Zeros";
    case InitKind::ones: return "dtlrt::Init::Ones";
    case InitKind::normal: return "dtlrt::Init::Normal";
    case InitKind::uniform: return "dtlrt::Init::Uniform";
    }
    llvm_unreachable("unknown initializer");
  }

  std::string spec(std::optional<Role> role, StringRef name, DictionaryAttr attrs,
                   RankedTensorType local) const {
    SmallVector<int64_t> global(local.getShape());
    SmallVector<std::string> dimAxes(local.getRank(), "{}");
    if (auto s = attrs ? attrs.getAs<ShardingAttr>(attr::sharding) : ShardingAttr()) {
      for (auto [d, axes] : llvm::enumerate(s.getDims())) {
        SmallVector<int64_t> list(axes.asArrayRef().begin(), axes.asArrayRef().end());
        dimAxes[d] = joined(list);
        for (int64_t a : list)
          global[d] *= mesh_.getSizes()[a];
      }
    }
    auto init = attrs ? attrs.getAs<InitAttr>(attr::init) : InitAttr();
    if (!init)
      init = InitAttr::get(mesh_.getContext(), InitKind::zeros, F64(0), F64(0));
    return "{" + roleName(role) + ", " + quoted(name) + ", " + dtype(local.getElementType()) +
           ", " + joined(global) + ", " + joined(local.getShape()) + ", {" +
           llvm::join(dimAxes, ", ") + "}, " + initName(init.getKind()) + ", " +
           literal(init.getA()) + ", " + literal(init.getB()) + "}";
  }

  void emitStep(StringRef field, func::FuncOp fn) {
    os_ << "  p." << field << ".fn = step_" << identifier(fn.getSymName()) << ";\n";
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      os_ << "  p." << field << ".args.push_back("
          << spec(argRole(fn, i), argName(fn, i), fn.getArgAttrDict(i),
                  cast<RankedTensorType>(fn.getArgumentTypes()[i]))
          << ");\n";
    for (unsigned i = 0; i < fn.getNumResults(); ++i)
      os_ << "  p." << field << ".results.push_back("
          << spec(resultRole(fn, i), resultName(fn, i), fn.getResultAttrDict(i),
                  cast<RankedTensorType>(fn.getResultTypes()[i]))
          << ");\n";
  }

  void emitData(StringRef field, DataAttr data) {
    if (!data)
      return;
    auto strings = [&](ArrayAttr list) {
      SmallVector<std::string> out;
      for (Attribute a : list)
        out.push_back(quoted(cast<StringAttr>(a).getValue()));
      return "{" + llvm::join(out, ", ") + "}";
    };
    static const char *sources[] = {"dtlrt::Source::Idx", "dtlrt::Source::Synthetic",
                                    "dtlrt::Source::Tokens"};
    os_ << "  p." << field << ".source = " << sources[unsigned(data.getSource())] << ";\n  p."
        << field << ".inputs = " << strings(data.getInputs()) << ";\n  p." << field
        << ".files = " << strings(data.getFiles()) << ";\n  p." << field
        << ".classes = " << data.getClasses() << ";\n  p." << field << ".size = " << data.getSize()
        << ";\n";
  }

  void emitTrainConfig(TrainAttr train, OptimizerAttr optimizer) {
    emitData("data", train.getData());
    emitData("eval", train.getEval());
    static const char *schedules[] = {"Constant", "Warmup", "Cosine", "WarmupCosine"};
    os_ << "  p.steps = " << train.getSteps() << ";\n  p.logEvery = " << train.getLogEvery()
        << ";\n  p.evalEvery = " << train.getEvalEvery()
        << ";\n  p.evalBatches = " << train.getEvalBatches() << ";\n  p.seed = " << train.getSeed()
        << ";\n  p.lr = " << literal(optimizer.getLr()) << ";\n  p.minLr = "
        << literal(train.getMinLr()) << ";\n  p.warmup = " << train.getWarmup()
        << ";\n  p.schedule = dtlrt::LrSchedule::" << schedules[unsigned(train.getSchedule())]
        << ";\n";
  }

  ModuleOp module_;
  const ProgramTarget &target_;
  raw_ostream &os_;
  MeshAttr mesh_;
};

} // namespace

LogicalResult emitProgram(ModuleOp module, const ProgramTarget &target, raw_ostream &os) {
  return ProgramEmitter(module, target, os).emit();
}

} // namespace dtl::emit
