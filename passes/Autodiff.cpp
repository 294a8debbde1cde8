//===- Autodiff.cpp - reverse-mode differentiation of the model -----------===//
//
// Builds @<model>_grad from @<model>: the forward ops, then every op's VJP in
// reverse order, from d(loss)/d(loss) = 1 back to the params.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/MapVector.h"

namespace dtl {
#define GEN_PASS_DEF_AUTODIFF
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

bool isParam(func::FuncOp fn, unsigned i) { return argRole(fn, i) == Role::param; }

/// Values that depend on a param: only these need gradients.
llvm::DenseSet<Value> activeValues(func::FuncOp fn) {
  llvm::DenseSet<Value> active;
  for (BlockArgument arg : fn.getArguments())
    if (isParam(fn, arg.getArgNumber()))
      active.insert(arg);
  fn.walk([&](Operation *op) {
    if (llvm::any_of(op->getOperands(), [&](Value v) { return active.contains(v); }))
      active.insert(op->result_begin(), op->result_end());
  });
  return active;
}

/// Erases side-effect-free ops whose results are unused (the gradients of
/// values nobody asked for), last first so chains go at once.
void eraseDeadOps(Block &block) {
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(block)))
    if (op.use_empty() && isPure(&op) && !op.hasTrait<OpTrait::IsTerminator>())
      op.erase();
}

struct Autodiff : dtl::impl::AutodiffBase<Autodiff> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto modelName = module->getAttrOfType<FlatSymbolRefAttr>(attr::model);
    if (!modelName) {
      module.emitError("autodiff needs the module's `dtl.model` attribute");
      return signalPassFailure();
    }
    auto forward = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(module, modelName);
    if (!forward || forward.getNumResults() == 0) {
      module.emitError("no model function ") << modelName << " with a loss result";
      return signalPassFailure();
    }
    if (failed(buildGradFunction(module, forward)))
      signalPassFailure();
  }

  LogicalResult buildGradFunction(ModuleOp module, func::FuncOp forward) {
    OpBuilder moduleBuilder(module.getContext());
    moduleBuilder.setInsertionPointAfter(forward);
    auto grad = cast<func::FuncOp>(moduleBuilder.clone(*forward));
    grad.setSymName((forward.getSymName() + "_grad").str());

    Block &body = grad.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss = ret.getOperand(0);
    auto lossType = cast<RankedTensorType>(loss.getType());
    if (lossType.getRank() != 0)
      return emitError(loss.getLoc(), "the loss must be a scalar");

    llvm::DenseSet<Value> active = activeValues(grad);
    OpBuilder b(ret);
    DenseMap<Value, Value> grads;
    auto accumulate = [&](Value v, Value g) {
      auto [it, inserted] = grads.try_emplace(v, g);
      if (!inserted)
        it->second = AddOp::create(b, g.getLoc(), g.getType(), it->second, g);
    };
    accumulate(loss, ConstantOp::create(b, loss.getLoc(), lossType, b.getF64FloatAttr(1.0)));

    // Layers of one stacked tensor: their gradients are stacked once at the
    // end, rather than each added into a mostly-zero stacked tensor.
    llvm::MapVector<Value, SmallVector<Value>> layerGrads;

    SmallVector<Operation *> forwardOps;
    for (Operation &op : body.without_terminator())
      forwardOps.push_back(&op);
    for (Operation *op : llvm::reverse(forwardOps)) {
      SmallVector<Value> resultGrads;
      for (Value r : op->getResults())
        resultGrads.push_back(grads.lookup(r));
      if (llvm::all_of(resultGrads, [](Value g) { return !g; }) ||
          llvm::none_of(op->getOperands(), [&](Value v) { return active.contains(v); }))
        continue;
      if (auto layer = dyn_cast<LayerOp>(op)) {
        SmallVector<Value> &slots = layerGrads[layer.getInput()];
        slots.resize(layer.getInput().getType().getShape()[0]);
        Value &slot = slots[layer.getIndex()];
        slot = slot ? AddOp::create(b, op->getLoc(), slot.getType(), slot, resultGrads[0])
                    : resultGrads[0];
        continue;
      }
      auto vjp = dyn_cast<VjpOpInterface>(op);
      if (!vjp)
        return op->emitError("'") << op->getName()
                                  << "' has no gradient, but a param reaches the loss through it";
      for (auto [r, g] : llvm::zip(op->getResults(), resultGrads))
        if (!g)
          g = ConstantOp::create(b, op->getLoc(), r.getType(), b.getF64FloatAttr(0.0));
      SmallVector<Value> operandGrads;
      vjp.buildVjp(b, resultGrads, operandGrads);
      for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads))
        if (g && active.contains(operand))
          accumulate(operand, g);
    }

    for (auto &[stacked, slots] : layerGrads) {
      auto type = cast<RankedTensorType>(stacked.getType());
      auto layerType = RankedTensorType::get(type.getShape().drop_front(), type.getElementType());
      for (Value &slot : slots)
        if (!slot)
          slot = ConstantOp::create(b, stacked.getLoc(), layerType, b.getF64FloatAttr(0.0));
      accumulate(stacked, StackOp::create(b, stacked.getLoc(), type, slots));
    }

    // Results: the loss, then one gradient per param, in argument order.
    SmallVector<Value> results{loss};
    SmallVector<Attribute> resultAttrs{b.getDictionaryAttr(
        b.getNamedAttr(attr::role, RoleAttr::get(b.getContext(), Role::loss)))};
    for (BlockArgument arg : grad.getArguments()) {
      if (!isParam(grad, arg.getArgNumber()))
        continue;
      Value g = grads.lookup(arg);
      if (!g)
        g = ConstantOp::create(b, arg.getLoc(), arg.getType(), b.getF64FloatAttr(0.0));
      results.push_back(g);
      SmallVector<NamedAttribute> attrs{
          b.getNamedAttr(attr::role, RoleAttr::get(b.getContext(), Role::grad)),
          b.getNamedAttr(attr::name, grad.getArgAttr(arg.getArgNumber(), attr::name))};
      if (Attribute s = grad.getArgAttr(arg.getArgNumber(), attr::sharding))
        attrs.push_back(b.getNamedAttr(attr::sharding, s));
      resultAttrs.push_back(b.getDictionaryAttr(attrs));
    }
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    grad.setType(b.getFunctionType(grad.getArgumentTypes(), ValueRange(results).getTypes()));
    grad.setAllResultAttrs(resultAttrs);
    eraseDeadOps(body);
    return success();
  }
};

} // namespace
