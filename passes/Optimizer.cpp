//===- Optimizer.cpp - one train_step: gradients + optimizer update -------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

namespace dtl {
#define GEN_PASS_DEF_OPTIMIZER
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// The optimizer state a param needs, by name suffix.
SmallVector<StringRef> stateNames(StringRef kind) {
  if (kind == "adamw")
    return {"m", "v"};
  return {"momentum"};
}

double getF64(DictionaryAttr dict, StringRef key, double fallback) {
  if (auto f = dict.getAs<FloatAttr>(key))
    return f.getValueAsDouble();
  return fallback;
}

struct Optimizer : dtl::impl::OptimizerBase<Optimizer> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto modelName = module->getAttrOfType<FlatSymbolRefAttr>(attr::model);
    auto config = module->getAttrOfType<DictionaryAttr>(attr::optimizer);
    if (!modelName || !config) {
      module.emitError("the optimizer pass needs `dtl.model` and `dtl.optimizer`");
      return signalPassFailure();
    }
    auto grad = module.lookupSymbol<func::FuncOp>((modelName.getValue() + "_grad").str());
    auto kind = config.getAs<StringAttr>("kind");
    if (!grad || !kind || (kind.getValue() != "adamw" && kind.getValue() != "sgd")) {
      module.emitError("needs @") << modelName.getValue()
                                  << "_grad (run dtl-autodiff) and kind = \"sgd\" or \"adamw\"";
      return signalPassFailure();
    }
    // @grad stays: the gradient check of the generated program calls it.
    buildTrainStep(module, grad, config, kind.getValue());
  }

  void buildTrainStep(ModuleOp module, func::FuncOp grad, DictionaryAttr config,
                      StringRef kind) {
    MLIRContext *ctx = module.getContext();
    OpBuilder b(ctx);
    Location loc = grad.getLoc();
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    auto named = [&](StringRef role, Attribute name, Attribute sharding = {}) {
      SmallVector<NamedAttribute> attrs{b.getNamedAttr(attr::role, b.getStringAttr(role))};
      if (name)
        attrs.push_back(b.getNamedAttr(attr::name, name));
      if (sharding)
        attrs.push_back(b.getNamedAttr(attr::sharding, sharding));
      return b.getDictionaryAttr(attrs);
    };

    // Arguments: params, optimizer state, inputs (as in @grad), lr, step.
    SmallVector<Type> argTypes;
    SmallVector<DictionaryAttr> argAttrs;
    SmallVector<unsigned> paramArgs, inputArgs;
    for (BlockArgument arg : grad.getArguments()) {
      auto role = grad.getArgAttrOfType<StringAttr>(arg.getArgNumber(), attr::role);
      (role && role.getValue() == "param" ? paramArgs : inputArgs).push_back(arg.getArgNumber());
    }
    for (unsigned i : paramArgs) {
      argTypes.push_back(grad.getArgument(i).getType());
      argAttrs.push_back(grad.getArgAttrDict(i));
    }
    for (unsigned i : paramArgs)
      for (StringRef state : stateNames(kind)) {
        auto name = grad.getArgAttrOfType<StringAttr>(i, attr::name);
        argTypes.push_back(grad.getArgument(i).getType());
        argAttrs.push_back(named("opt_state", b.getStringAttr(name.getValue() + "." + state),
                                 grad.getArgAttr(i, attr::sharding)));
      }
    for (unsigned i : inputArgs) {
      argTypes.push_back(grad.getArgument(i).getType());
      argAttrs.push_back(grad.getArgAttrDict(i));
    }
    argTypes.append({scalar, scalar});
    argAttrs.append({named("lr", {}), named("step", {})});

    b.setInsertionPointAfter(grad);
    auto step = func::FuncOp::create(b, loc, "train_step", b.getFunctionType(argTypes, {}));
    step.setAllArgAttrs(argAttrs);
    Block *body = step.addEntryBlock();
    b.setInsertionPointToStart(body);

    IRMapping mapping;
    unsigned next = 0;
    for (unsigned i : paramArgs)
      mapping.map(grad.getArgument(i), body->getArgument(next++));
    unsigned firstState = next;
    next += paramArgs.size() * stateNames(kind).size();
    for (unsigned i : inputArgs)
      mapping.map(grad.getArgument(i), body->getArgument(next++));
    Value lr = body->getArgument(next), stepNumber = body->getArgument(next + 1);

    for (Operation &op : grad.getBody().front().without_terminator())
      b.clone(op, mapping);
    auto gradReturn = cast<func::ReturnOp>(grad.getBody().front().getTerminator());
    Value loss = mapping.lookup(gradReturn.getOperand(0));
    SmallVector<Value> grads;
    for (Value g : gradReturn.getOperands().drop_front())
      grads.push_back(mapping.lookup(g));

    // grad_norm = sqrt(sum over params of sum(g * g)).
    Value sumSquares;
    for (Value g : grads) {
      auto type = cast<RankedTensorType>(g.getType());
      Value squares = MulOp::create(b, loc, type, g, g);
      SmallVector<int64_t> all = llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()));
      Value s = ReduceSumOp::create(b, loc, scalar, squares, b.getDenseI64ArrayAttr(all), UnitAttr());
      sumSquares = sumSquares ? AddOp::create(b, loc, scalar, sumSquares, s).getResult() : s;
    }
    if (!sumSquares)
      sumSquares = ConstantOp::create(b, loc, scalar, b.getF64FloatAttr(0.0));
    Value gradNorm = SqrtOp::create(b, loc, scalar, sumSquares);

    SmallVector<Value> results{loss, gradNorm};
    SmallVector<DictionaryAttr> resultAttrs{named("loss", {}), named("grad_norm", {})};
    SmallVector<Value> newStates;
    SmallVector<DictionaryAttr> stateAttrs;
    double wd = getF64(config, "weight_decay", 0.0);
    for (auto [k, i] : llvm::enumerate(paramArgs)) {
      Value param = body->getArgument(k);
      Type t = param.getType();
      unsigned numStates = stateNames(kind).size();
      SmallVector<Value> state;
      for (unsigned s = 0; s < numStates; ++s)
        state.push_back(body->getArgument(firstState + k * numStates + s));
      Operation *update;
      if (kind == "adamw")
        update = AdamwUpdateOp::create(
            b, loc, TypeRange{t, t, t}, param, grads[k], state[0], state[1], lr, stepNumber,
            b.getF64FloatAttr(getF64(config, "beta1", 0.9)),
            b.getF64FloatAttr(getF64(config, "beta2", 0.999)),
            b.getF64FloatAttr(getF64(config, "eps", 1e-8)), b.getF64FloatAttr(wd));
      else
        update = SgdUpdateOp::create(b, loc, TypeRange{t, t}, param, grads[k], state[0], lr,
                                     b.getF64FloatAttr(getF64(config, "momentum", 0.0)),
                                     b.getF64FloatAttr(wd));
      results.push_back(update->getResult(0));
      resultAttrs.push_back(step.getArgAttrDict(k));
      for (unsigned s = 0; s < numStates; ++s) {
        newStates.push_back(update->getResult(1 + s));
        stateAttrs.push_back(step.getArgAttrDict(firstState + k * numStates + s));
      }
    }
    results.append(newStates);
    resultAttrs.append(stateAttrs);
    // Updated params/state keep the role and name of the argument they replace.
    SmallVector<DictionaryAttr> cleanedResultAttrs;
    for (DictionaryAttr d : resultAttrs) {
      NamedAttrList list(d);
      list.erase(attr::init);
      cleanedResultAttrs.push_back(list.getDictionary(ctx));
    }
    func::ReturnOp::create(b, loc, results);
    step.setType(b.getFunctionType(argTypes, ValueRange(results).getTypes()));
    step.setAllResultAttrs(cleanedResultAttrs);
  }
};

} // namespace
