//===- Autodiff.cpp - reverse-mode differentiation of the model -----------===//
//
// Builds @<model>_grad from @<model>: the forward ops, then every op's VJP in
// reverse order, from d(loss)/d(loss) = 1 back to the params. A dtl.repeat
// (a scan) differentiates into a reverse dtl.repeat, as JAX's scan does: the
// forward saves, as extra stacked results, the values of each iteration its
// backward reads; the backward iterates from the last layer to the first,
// carrying the gradient of the carried value and summing the gradients of
// invariants, and yields each layer's gradient of its stacked operands. A
// repeat inside a repeat is the same rule applied inside the body.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

namespace dtl {
#define GEN_PASS_DEF_AUTODIFF
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// Marks the values of `block` that depend on an active value (a param):
/// only these need gradients. A repeat's carried value is active when its
/// initial value is or when what the body yields for it is (a fixpoint).
void markActive(Block &block, llvm::DenseSet<Value> &active) {
  for (Operation &op : block) {
    auto repeat = dyn_cast<RepeatOp>(op);
    if (!repeat) {
      if (llvm::any_of(op.getOperands(), [&](Value v) { return active.contains(v); }))
        active.insert(op.result_begin(), op.result_end());
      continue;
    }
    for (auto [operand, arg] : llvm::zip(repeat.getInits(), repeat.getCarryArgs()))
      if (active.contains(operand))
        active.insert(arg);
    for (auto [operand, arg] : llvm::zip(repeat.getStacked(), repeat.getStackedArgs()))
      if (active.contains(operand))
        active.insert(arg);
    for (auto [operand, arg] : llvm::zip(repeat.getInvariants(), repeat.getInvariantArgs()))
      if (active.contains(operand))
        active.insert(arg);
    ValueRange yielded = repeat.getYield().getValues();
    for (bool changed = true; changed;) {
      markActive(repeat.getBodyBlock(), active);
      changed = false;
      for (auto [arg, next] : llvm::zip(repeat.getCarryArgs(), yielded))
        if (active.contains(next) && active.insert(arg).second)
          changed = true;
    }
    for (auto [result, value] : llvm::zip(repeat.getResults(), yielded))
      if (active.contains(value))
        active.insert(result);
  }
}

Value zerosLike(OpBuilder &b, Location loc, Type type) {
  return ConstantOp::create(b, loc, type, b.getF64FloatAttr(0.0));
}

class Differentiator {
public:
  Differentiator(llvm::DenseSet<Value> &active) : active_(active) {}

  /// Builds, with `b`, the gradients of the operands of the ops of `block`
  /// (all but its terminator), last op first, from the gradients in `grads`
  /// (accumulated there).
  LogicalResult backprop(Block &block, OpBuilder &b, DenseMap<Value, Value> &grads) {
    SmallVector<Operation *> ops;
    for (Operation &op : block.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops)) {
      SmallVector<Value> resultGrads;
      for (Value r : op->getResults())
        resultGrads.push_back(grads.lookup(r));
      if (llvm::all_of(resultGrads, [](Value g) { return !g; }) ||
          llvm::none_of(op->getOperands(), [&](Value v) { return active_.contains(v); }))
        continue;
      // A repeat is replaced while it is differentiated: its operands are
      // read first.
      SmallVector<Value> operands(op->getOperands()), operandGrads;
      if (auto repeat = dyn_cast<RepeatOp>(op)) {
        if (failed(differentiate(repeat, b, resultGrads, operandGrads)))
          return failure();
      } else if (auto vjp = dyn_cast<VjpOpInterface>(op)) {
        for (auto [r, g] : llvm::zip(op->getResults(), resultGrads))
          if (!g)
            g = zerosLike(b, op->getLoc(), r.getType());
        vjp.buildVjp(b, resultGrads, operandGrads);
      } else {
        return op->emitError("'") << op->getName()
                                  << "' has no gradient, but a param reaches the loss through it";
      }
      for (auto [operand, g] : llvm::zip(operands, operandGrads))
        if (g && active_.contains(operand))
          accumulate(b, grads, operand, g);
    }
    return success();
  }

  static void accumulate(OpBuilder &b, DenseMap<Value, Value> &grads, Value v, Value g) {
    auto [it, inserted] = grads.try_emplace(v, g);
    if (!inserted)
      it->second = AddOp::create(b, g.getLoc(), g.getType(), it->second, g);
  }

private:
  LogicalResult differentiate(RepeatOp forward, OpBuilder &b, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads);

  llvm::DenseSet<Value> &active_;
};

/// The VJP of one dtl.repeat (see the file comment).
struct RepeatVjp {
  Differentiator &diff;
  llvm::DenseSet<Value> &active;
  RepeatOp forward;
  Location loc;

  // The backward body, built detached, then given to the backward repeat.
  std::unique_ptr<Block> body = std::make_unique<Block>();
  // Backward operands, in the order of the body's arguments of each kind.
  SmallVector<Value> inits, stacked, invariants;
  // Forward values of one iteration the backward reads, saved as extra
  // stacked results of the forward.
  SmallVector<Value> residuals;

  LogicalResult run(OpBuilder &b, ArrayRef<Value> resultGrads,
                    SmallVectorImpl<Value> &operandGrads) {
    Block &fwd = forward.getBodyBlock();
    body->addArgument(b.getIndexType(), loc);
    // Carried: the gradient of each active carried value, then a running sum
    // for each active invariant.
    SmallVector<unsigned> carries, sums, xs;
    for (auto [k, arg] : llvm::enumerate(forward.getCarryArgs()))
      if (active.contains(arg))
        carries.push_back(k);
    for (auto [k, arg] : llvm::enumerate(forward.getInvariantArgs()))
      if (active.contains(arg))
        sums.push_back(k);
    for (auto [k, arg] : llvm::enumerate(forward.getStackedArgs()))
      if (active.contains(arg))
        xs.push_back(k);
    ValueRange yielded = forward.getYield().getValues();
    size_t numCarries = forward.getInits().size();
    DenseMap<Value, Value> grads;
    // The body is not in a region yet: the builder takes the context from b.
    OpBuilder bb(b.getContext());
    bb.setInsertionPointToEnd(body.get());
    for (unsigned k : carries) {
      Type t = forward.getCarryArgs()[k].getType();
      Value g = resultGrads[k] ? resultGrads[k] : zerosLike(b, loc, t);
      inits.push_back(g);
      Differentiator::accumulate(bb, grads, yielded[k], body->addArgument(t, loc));
    }
    for (unsigned k : sums) {
      Type t = forward.getInvariantArgs()[k].getType();
      inits.push_back(zerosLike(b, loc, t));
      body->addArgument(t, loc);
    }
    // The gradients of stacked results enter as slices.
    for (auto [k, g] : llvm::enumerate(resultGrads.drop_front(numCarries)))
      if (g)
        Differentiator::accumulate(bb, grads, yielded[numCarries + k],
                                   addStacked(g, sliceType(g.getType())));

    if (failed(diff.backprop(fwd, bb, grads)))
      return failure();

    // Yield: the gradient of each carried value at the previous layer, the
    // sums plus this layer's invariant gradients, each stacked slice's.
    SmallVector<Value> next;
    for (unsigned k : carries) {
      Value g = grads.lookup(forward.getCarryArgs()[k]);
      next.push_back(g ? g : zerosLike(bb, loc, forward.getCarryArgs()[k].getType()));
    }
    for (auto [i, k] : llvm::enumerate(sums)) {
      Value sum = body->getArgument(1 + carries.size() + i);
      if (Value g = grads.lookup(forward.getInvariantArgs()[k]))
        sum = AddOp::create(bb, loc, sum.getType(), sum, g);
      next.push_back(sum);
    }
    for (unsigned k : xs) {
      Value g = grads.lookup(forward.getStackedArgs()[k]);
      next.push_back(g ? g : zerosLike(bb, loc, forward.getStackedArgs()[k].getType()));
    }
    YieldOp::create(bb, loc, next);
    if (std::optional<Recompute> level = forward.getRecompute(); level && *level != Recompute::none)
      recomputeForward(*level);
    isolate();

    size_t numStacked = forward.getStacked().size();
    SmallVector<Type> types(ValueRange(inits).getTypes());
    for (unsigned k : xs)
      types.push_back(forward.getStacked()[k].getType());
    RepeatOp saving = saveResiduals(b); // `forward` is gone after this
    // The backward runs through the same stages, in reverse.
    auto backward =
        RepeatOp::create(b, loc, types, saving.getCountAttr(), b.getUnitAttr(), UnitAttr(),
                         RecomputeAttr(), saving.getPipelineAttr(), saving.getVirtualStagesAttr(),
                         saving.getStageLayersAttr(), inits, stacked, invariants);
    backward.getBody().push_back(body.release());

    operandGrads.assign(saving->getNumOperands(), Value());
    for (auto [i, k] : llvm::enumerate(carries))
      operandGrads[k] = backward.getResult(i);
    for (auto [i, k] : llvm::enumerate(sums))
      operandGrads[numCarries + numStacked + k] = backward.getResult(carries.size() + i);
    for (auto [i, k] : llvm::enumerate(xs))
      operandGrads[numCarries + k] = backward.getResult(inits.size() + i);
    return success();
  }

  static RankedTensorType sliceType(Type stackedType) {
    auto t = cast<RankedTensorType>(stackedType);
    return RankedTensorType::get(t.getShape().drop_front(), t.getElementType());
  }

  static RankedTensorType stackedType(Type slice, int64_t count) {
    auto t = cast<RankedTensorType>(slice);
    SmallVector<int64_t> shape{count};
    shape.append(t.getShape().begin(), t.getShape().end());
    return RankedTensorType::get(shape, t.getElementType());
  }

  /// A stacked operand of the backward, entering its body as a slice.
  BlockArgument addStacked(Value operand, Type slice) {
    unsigned position = 1 + inits.size() + stacked.size();
    stacked.push_back(operand);
    return body->insertArgument(position, slice, loc);
  }

  /// Activation checkpointing: the forward body again at the start of the
  /// backward's (`all`), or its cheap ops only (`cheap`: not GEMMs,
  /// attention or inner loops), the clones read instead of the forward's
  /// values. What is left to save is then the body's arguments (the
  /// carried input of each iteration), plus with `cheap` the results of
  /// the ops not run again; see isolate. Clones no gradient reads go in the
  /// pass's dead-code removal.
  void recomputeForward(Recompute level) {
    Block &fwd = forward.getBodyBlock();
    OpBuilder atStart(forward.getContext());
    atStart.setInsertionPointToStart(body.get());
    IRMapping again;
    for (Operation &op : fwd.without_terminator())
      if (level == Recompute::all || !isa<MatmulOp, CausalAttentionOp, RepeatOp>(op))
        atStart.clone(op, again)->setAttr(attr::recomputed, atStart.getUnitAttr());
    for (Operation &op : fwd.without_terminator())
      for (Value r : op.getResults())
        if (Value clone = again.lookupOrNull(r))
          r.replaceUsesWithIf(
              clone, [&](OpOperand &use) { return use.getOwner()->getBlock() == body.get(); });
  }

  /// The backward body reads forward values directly while it is built; each
  /// becomes one of its own: the layer index, an invariant, a slice of a
  /// stacked operand, a constant made again, or a saved residual.
  void isolate() {
    Block &fwd = forward.getBodyBlock();
    llvm::SetVector<Value> external;
    for (Operation &op : *body)
      for (Value v : op.getOperands())
        if (v.getParentBlock() != body.get())
          external.insert(v);
    OpBuilder atStart(forward.getContext());
    atStart.setInsertionPointToStart(body.get());
    for (Value v : external) {
      Value inside;
      auto arg = dyn_cast<BlockArgument>(v);
      if (arg && arg.getOwner() == &fwd && arg.getArgNumber() == 0) {
        inside = body->getArgument(0);
      } else if (arg && llvm::is_contained(forward.getInvariantArgs(), arg)) {
        invariants.push_back(
            forward.getInvariants()[arg.getArgNumber() - 1 - forward.getInits().size() -
                                    forward.getStacked().size()]);
        inside = body->addArgument(v.getType(), loc);
      } else if (arg && llvm::is_contained(forward.getStackedArgs(), arg)) {
        inside = addStacked(
            forward.getStacked()[arg.getArgNumber() - 1 - forward.getInits().size()], v.getType());
      } else if (auto constant = v.getDefiningOp<ConstantOp>()) {
        inside = atStart.clone(*constant)->getResult(0);
      } else {
        residuals.push_back(v);
        // The operand is the forward's stacked result, made in saveResiduals.
        inside = addStacked(Value(), v.getType());
      }
      v.replaceUsesWithIf(inside,
                          [&](OpOperand &use) { return use.getOwner()->getBlock() == body.get(); });
    }
  }

  /// The forward again, also yielding each residual; fills the backward's
  /// stacked operands that were left for them.
  RepeatOp saveResiduals(OpBuilder &b) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forward);
    SmallVector<Type> types(forward.getResultTypes());
    for (Value r : residuals)
      types.push_back(stackedType(r.getType(), forward.slots()));
    auto saving = RepeatOp::create(
        b, forward.getLoc(), types, forward.getCountAttr(), forward.getReverseAttr(),
        forward.getAccumulateAttr(), forward.getRecomputeAttr(), forward.getPipelineAttr(),
        forward.getVirtualStagesAttr(), forward.getStageLayersAttr(), forward.getInits(),
        forward.getStacked(), forward.getInvariants());
    saving->setDiscardableAttrs(forward->getDiscardableAttrDictionary());
    saving.getBody().takeBody(forward.getBody());
    YieldOp yield = saving.getYield();
    SmallVector<Value> values(yield.getValues());
    values.append(residuals.begin(), residuals.end());
    yield->setOperands(values);
    for (auto [old, now] : llvm::zip(forward.getResults(), saving.getResults())) {
      old.replaceAllUsesWith(now);
      if (active.contains(old))
        active.insert(now);
    }
    // The residual slots of the backward's stacked operands, in order.
    unsigned next = forward.getNumResults();
    forward.erase();
    for (Value &operand : stacked)
      if (!operand)
        operand = saving.getResult(next++);
    return saving;
  }
};

LogicalResult Differentiator::differentiate(RepeatOp forward, OpBuilder &b,
                                            ArrayRef<Value> resultGrads,
                                            SmallVectorImpl<Value> &operandGrads) {
  // Accumulating loops are built after autodiff (gradient accumulation).
  if (forward.getAccumulate())
    return forward.emitError("an accumulating dtl.repeat has no gradient");
  RepeatVjp vjp{*this, active_, forward, forward.getLoc()};
  return vjp.run(b, resultGrads, operandGrads);
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
    if (failed(buildGradFunction(forward)))
      signalPassFailure();
  }

  LogicalResult buildGradFunction(func::FuncOp forward) {
    OpBuilder moduleBuilder(forward.getContext());
    moduleBuilder.setInsertionPointAfter(forward);
    auto grad = cast<func::FuncOp>(moduleBuilder.clone(*forward));
    grad.setSymName((forward.getSymName() + "_grad").str());

    Block &body = grad.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss = ret.getOperand(0);
    auto lossType = cast<RankedTensorType>(loss.getType());
    if (lossType.getRank() != 0)
      return emitError(loss.getLoc(), "the loss must be a scalar");

    llvm::DenseSet<Value> active;
    for (BlockArgument arg : grad.getArguments())
      if (argRole(grad, arg.getArgNumber()) == Role::param)
        active.insert(arg);
    markActive(body, active);

    OpBuilder b(ret);
    DenseMap<Value, Value> grads;
    grads[loss] = ConstantOp::create(b, loss.getLoc(), lossType, b.getF64FloatAttr(1.0));
    Differentiator differentiator(active);
    if (failed(differentiator.backprop(body, b, grads)))
      return failure();

    // Results: the loss, then one gradient per param, in argument order.
    MLIRContext *ctx = grad.getContext();
    SmallVector<Value> results{loss};
    SmallVector<Attribute> resultAttrs{
        b.getDictionaryAttr(b.getNamedAttr(attr::role, RoleAttr::get(ctx, Role::loss)))};
    for (BlockArgument arg : grad.getArguments()) {
      if (argRole(grad, arg.getArgNumber()) != Role::param)
        continue;
      Value g = grads.lookup(arg);
      if (!g)
        g = zerosLike(b, arg.getLoc(), arg.getType());
      results.push_back(g);
      SmallVector<NamedAttribute> attrs{
          b.getNamedAttr(attr::role, RoleAttr::get(ctx, Role::grad)),
          b.getNamedAttr(attr::name, grad.getArgAttr(arg.getArgNumber(), attr::name))};
      if (Attribute s = grad.getArgAttr(arg.getArgNumber(), attr::sharding))
        attrs.push_back(b.getNamedAttr(attr::sharding, s));
      resultAttrs.push_back(b.getDictionaryAttr(attrs));
    }
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    grad.setType(b.getFunctionType(grad.getArgumentTypes(), ValueRange(results).getTypes()));
    grad.setAllResultAttrs(resultAttrs);

    // What no result needs goes: the gradients of values nobody asked for,
    // and what the forward saved for them.
    RewritePatternSet patterns(ctx);
    RepeatOp::getCanonicalizationPatterns(patterns, ctx);
    IRRewriter rewriter(ctx);
    (void)runRegionDCE(rewriter, grad.getBody());
    return applyPatternsGreedily(grad, std::move(patterns));
  }
};

} // namespace
