//===- MixedPrecision.cpp - bf16 storage with f32 masters -----------------===//
//
// llm.c's and torch autocast's scheme, decided once over the whole step:
// activations, the working copies of the weights and what flows between
// them are bf16; master weights, optimizer state, gradients on their way to
// the update, statistics and scalars are f32. Kernels compute in f32 either
// way, so only storage (and memory traffic) changes.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

namespace dtl {
#define GEN_PASS_DEF_MIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

bool isRealTensor(Type t) {
  auto tensor = dyn_cast<RankedTensorType>(t);
  return tensor && isa<Float32Type, BFloat16Type>(tensor.getElementType());
}

bool isScalar(Type t) {
  auto tensor = dyn_cast<RankedTensorType>(t);
  return tensor && tensor.getRank() == 0;
}

RankedTensorType withElement(Type t, Type element) {
  return RankedTensorType::get(cast<RankedTensorType>(t).getShape(), element);
}

/// Operands an op always reads in f32: scalar parameters (a dropout's step)
/// and scalar math, the optimizer's operands, and the statistics a forward
/// saved (a row's mean and rstd, a log-sum-exp) or the loss's gradient per
/// example. A scalar that a broadcast or reshape makes a tensor of follows
/// the tensor's type.
bool readsF32(OpOperand &use) {
  Operation *op = use.getOwner();
  Value v = use.get();
  bool scalarMath = llvm::all_of(op->getResultTypes(), isScalar);
  if (isa<AdamwUpdateOp, SgdUpdateOp>(op) ||
      (isScalar(v.getType()) && (scalarMath || isa<DropoutOp>(op))))
    return true;
  if (auto ln = dyn_cast<LayerNormGradInputOp>(op))
    return v == ln.getMean() || v == ln.getRstd();
  if (auto ln = dyn_cast<LayerNormGradParamsOp>(op))
    return v == ln.getMean() || v == ln.getRstd();
  if (auto attention = dyn_cast<CausalAttentionGradOp>(op))
    return v == attention.getLse();
  if (auto ce = dyn_cast<CrossEntropyGradOp>(op))
    return v == ce.getGrad() || v == ce.getLse();
  return isa<CrossEntropyCombineOp, CorrectCombineOp>(op);
}

/// Whether `use` is summed to a scalar (a loss, or the squares of the
/// gradients summed to their norm): such a sum is f32, and so is what it
/// reads, so a norm squares f32 gradients without rounding them to bf16.
bool sumsToScalar(OpOperand &use) {
  auto sum = dyn_cast<ReduceSumOp>(use.getOwner());
  return sum && isScalar(sum.getType());
}

/// Values stored in f32: what the optimizer updates read as gradients and
/// what only f32 operands or sums to a scalar read (a loss's seed gradient,
/// a gradient's squares), with the sums,
/// reshapes, collectives and loop results they come through. So gradients
/// are reduced and accumulated in f32 (the GEMM or kernel that produces one
/// writes it in f32 directly); with `reduceInBf16`, the reducing
/// collectives and what feeds them are bf16 (half the bytes sent) and the
/// gradient becomes f32 after them.
DenseSet<Value> f32Values(func::FuncOp fn, bool reduceInBf16) {
  SmallVector<Value> work;
  fn.walk([&](Operation *op) {
    if (auto adamw = dyn_cast<AdamwUpdateOp>(op))
      work.push_back(adamw.getGrad());
    else if (auto sgd = dyn_cast<SgdUpdateOp>(op))
      work.push_back(sgd.getGrad());
    for (Value result : op->getResults())
      if (!result.use_empty() && llvm::all_of(result.getUses(), [](OpOperand &use) {
            return readsF32(use) || sumsToScalar(use);
          }))
        work.push_back(result);
  });
  DenseSet<Value> kept;
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!isRealTensor(v.getType()) || !kept.insert(v).second)
      continue;
    Operation *def = v.getDefiningOp();
    if (reduceInBf16 && isa_and_nonnull<shard::AllReduceOp, shard::ReduceScatterOp>(def)) {
      kept.erase(v);
      continue;
    }
    if (auto repeat = dyn_cast_or_null<RepeatOp>(def)) {
      work.push_back(repeat.getYield().getValues()[cast<OpResult>(v).getResultNumber()]);
    } else if (isa_and_nonnull<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllGatherOp,
                               shard::AllToAllOp, shard::AllSliceOp, ReshapeOp, TransposeOp,
                               BroadcastOp, SplitOp, ConcatOp, AddOp, SubOp, MulOp, DivOp, NegOp>(
                   def)) {
      for (Value operand : def->getOperands())
        work.push_back(operand);
    }
  }
  return kept;
}

/// Results that are f32 whatever the op stores: the statistics of
/// layernorm and attention, losses, and what the optimizer writes.
bool writesF32(OpResult result) {
  Operation *op = result.getOwner();
  if (isScalar(result.getType()) ||
      isa<AdamwUpdateOp, SgdUpdateOp, CrossEntropyOp, CrossEntropyPartialOp, CrossEntropyCombineOp,
          CorrectOp, ArgmaxPartialOp, CorrectCombineOp, LabelKeptOp>(op))
    return true;
  if (isa<LayerNormOp>(op))
    return result.getResultNumber() > 0;
  if (isa<CausalAttentionOp>(op))
    return result.getResultNumber() == 1;
  return false;
}

/// Ops that read bf16 and may write an f32 result without a pass of their
/// own: GEMMs and sums accumulate in f32 anyway.
bool writesAnyReal(Operation *op) {
  return isa<MatmulOp, MatmulBiasOp, ReduceSumOp, LayerNormGradParamsOp, EmbeddingGradOp>(op);
}

class Retyper {
public:
  Retyper(func::FuncOp fn, bool reduceInBf16) : keptF32_(f32Values(fn, reduceInBf16)) {
    MLIRContext *ctx = fn.getContext();
    f32_ = Float32Type::get(ctx);
    bf16_ = BFloat16Type::get(ctx);
  }

  void retype(Block &block) {
    for (Operation &op : llvm::make_early_inc_range(block)) {
      if (auto repeat = dyn_cast<RepeatOp>(op))
        retype(repeat);
      else if (auto ret = dyn_cast<func::ReturnOp>(op))
        for (auto [use, type] :
             llvm::zip(ret->getOpOperands(), ret->getParentOfType<func::FuncOp>().getResultTypes()))
          coerce(use, cast<RankedTensorType>(type).getElementType());
      else if (!isa<YieldOp, ConvertOp>(op))
        retypeOp(&op);
    }
  }

private:
  /// The element type an op stores: f32 where its results are kept in f32
  /// or all scalars, bf16 elsewhere.
  Type storageOf(Operation *op) {
    bool anyReal = false, allF32 = true;
    for (OpResult r : op->getResults()) {
      if (!isRealTensor(r.getType()) || writesF32(r))
        continue;
      anyReal = true;
      allF32 = allF32 && keptF32_.contains(r);
    }
    return anyReal && !allF32 ? bf16_ : f32_;
  }

  void retypeOp(Operation *op) {
    Type storage = storageOf(op);
    // A split's pieces and its whole share one element type.
    if (isa<SplitOp, ConcatOp>(op) &&
        llvm::any_of(op->getResults(), [&](Value r) { return keptF32_.contains(r); }))
      storage = f32_;
    bool mixed = writesAnyReal(op);
    for (OpOperand &use : op->getOpOperands()) {
      if (!isRealTensor(use.get().getType()))
        continue;
      if (readsF32(use))
        coerce(use, f32_);
      else if (!isa<ReduceSumOp, CrossEntropyOp, CrossEntropyPartialOp, CorrectOp, ArgmaxPartialOp>(
                   op))
        coerce(use, mixed ? bf16_ : storage);
    }
    for (OpResult r : op->getResults())
      if (isRealTensor(r.getType()) && !writesF32(r))
        r.setType(withElement(r.getType(), keptF32_.contains(r) ? f32_ : storage));
  }

  void retype(RepeatOp repeat) {
    Block &body = repeat.getBodyBlock();
    for (auto [arg, init] : llvm::zip(repeat.getCarryArgs(), repeat.getInits()))
      arg.setType(init.getType());
    for (auto [arg, stacked] : llvm::zip(repeat.getStackedArgs(), repeat.getStacked()))
      arg.setType(withElement(arg.getType(), getElementTypeOrSelf(stacked.getType())));
    for (auto [arg, invariant] : llvm::zip(repeat.getInvariantArgs(), repeat.getInvariants()))
      arg.setType(invariant.getType());
    retype(body);
    YieldOp yield = repeat.getYield();
    size_t carries = repeat.getInits().size();
    for (auto [k, use] : llvm::enumerate(yield->getOpOperands())) {
      OpResult result = repeat->getResult(k);
      if (!isRealTensor(use.get().getType()))
        continue;
      Type want = k < carries ? getElementTypeOrSelf(repeat.getCarryArgs()[k].getType())
                  : keptF32_.contains(result) ? f32_
                                              : getElementTypeOrSelf(use.get().getType());
      coerce(use, want);
      result.setType(withElement(result.getType(), want));
    }
  }

  /// Makes `use` read `element`, through one dtl.convert per value and
  /// type, made right after the value's definition.
  void coerce(OpOperand &use, Type element) {
    Value v = use.get();
    if (!isRealTensor(v.getType()) || getElementTypeOrSelf(v.getType()) == element)
      return;
    Value &converted = converts_[{v, element}];
    if (!converted) {
      OpBuilder b(v.getContext());
      if (Operation *def = v.getDefiningOp())
        b.setInsertionPointAfter(def);
      else
        b.setInsertionPointToStart(cast<BlockArgument>(v).getOwner());
      converted = ConvertOp::create(b, v.getLoc(), withElement(v.getType(), element), v);
    }
    use.set(converted);
  }

  DenseSet<Value> keptF32_;
  DenseMap<std::pair<Value, Type>, Value> converts_;
  Type f32_, bf16_;
};

struct MixedPrecision : dtl::impl::MixedPrecisionBase<MixedPrecision> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto train = module->getAttrOfType<TrainAttr>(attr::train);
    if (!train || train.getPrecision() != Precision::bf16)
      return;
    bool reduceInBf16 = train.getReducePrecision() == Precision::bf16;
    module.walk([&](func::FuncOp fn) {
      if (!fn.isExternal())
        Retyper(fn, reduceInBf16).retype(fn.getBody().front());
    });
  }
};

} // namespace
