//===- PropagateSharding.cpp - choose a sharding for every value ----------===//
//
// Factor-style propagation (as in GSPMD/Shardy): each op's loops tie its
// operand and result dimensions together; a split known on one dimension
// flows through the loop to every other dimension it indexes. A dtl.repeat
// ties each operand to its body argument (a stacked operand's slice to its
// trailing dimensions) and each yielded value to its result and, for a
// carried value, to its body argument: every layer has the same layouts.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include <limits>

namespace dtl {
#define GEN_PASS_DEF_PROPAGATESHARDING
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// Per dimension: the chosen axes, or nothing yet (open).
using OpenLayout = SmallVector<std::optional<Axes>>;

/// One sharding rule over some values: an op's (ShardingRuleOpInterface),
/// or a tie a repeat makes between values of its operands, body and results.
struct Rule {
  SmallVector<Value> values;
  SmallVector<AffineMap> maps;
  SmallVector<LoopKind> kinds;
  SmallVector<int64_t> divisors; ///< per loop, or empty (see getLoopShardDivisors)
  Axes leading;                  ///< the layout of the leading dimension no loop indexes
};

bool isTensor(Value v) { return isa<RankedTensorType>(v.getType()); }

/// `values` all the same layout (one parallel loop per dimension), except
/// that those with `leading` get an extra leading dimension that no loop
/// indexes (a stacked operand or result: the layer dimension stays whole).
Rule tie(ArrayRef<Value> values, ArrayRef<bool> leading) {
  Rule rule;
  auto slice = [&](unsigned i) {
    return cast<RankedTensorType>(values[i].getType()).getRank() - (leading[i] ? 1 : 0);
  };
  unsigned loops = slice(0);
  MLIRContext *ctx = values.front().getContext();
  for (auto [i, v] : llvm::enumerate(values)) {
    SmallVector<AffineExpr> exprs;
    if (leading[i])
      exprs.push_back(getAffineConstantExpr(0, ctx));
    for (unsigned l = 0; l < loops; ++l)
      exprs.push_back(getAffineDimExpr(l, ctx));
    rule.values.push_back(v);
    rule.maps.push_back(AffineMap::get(loops, 0, exprs, ctx));
  }
  rule.kinds.assign(loops, LoopKind::Parallel);
  return rule;
}

/// The ties of a repeat. Pipeline stages split the stacked values' layer
/// dimension over their axis.
SmallVector<Rule, 0> repeatRules(RepeatOp repeat, MeshAttr mesh) {
  Axes layers;
  if (repeat.runsAsStages())
    layers = stageAxes(repeat, mesh);
  SmallVector<Rule, 0> rules;
  ValueRange yielded = repeat.getYield().getValues();
  for (auto [init, arg, next, result] :
       llvm::zip(repeat.getInits(), repeat.getCarryArgs(), yielded, repeat.getCarryResults()))
    if (isTensor(init))
      rules.push_back(tie({init, arg, next, result}, {false, false, false, false}));
  for (auto [operand, arg] : llvm::zip(repeat.getStacked(), repeat.getStackedArgs())) {
    rules.push_back(tie({operand, arg}, {true, false}));
    rules.back().leading = layers;
  }
  for (auto [operand, arg] : llvm::zip(repeat.getInvariants(), repeat.getInvariantArgs()))
    if (isTensor(operand))
      rules.push_back(tie({operand, arg}, {false, false}));
  // A sum's layout is the one the body gives it (see dtl-partition).
  if (!repeat.getAccumulate())
    for (auto [next, result] :
         llvm::zip(yielded.drop_front(repeat.getInits().size()), repeat.getStackedResults())) {
      rules.push_back(tie({next, result}, {false, true}));
      rules.back().leading = layers;
    }
  return rules;
}

struct Propagation {
  explicit Propagation(MeshAttr mesh) : mesh(mesh) {}

  MeshAttr mesh;
  DenseMap<Value, OpenLayout> layouts;

  OpenLayout &layoutOf(Value v) {
    auto it = layouts.find(v);
    if (it != layouts.end())
      return it->second;
    unsigned rank = cast<RankedTensorType>(v.getType()).getRank();
    return layouts[v] = OpenLayout(rank);
  }

  /// Values whose layout the user gave, by how firmly: arguments (params
  /// and inputs, constraints on them, and a repeat's body arguments for
  /// them) 2, other constraints 1.
  /// Within an op they decide its loops before derived values (0) do, so a
  /// param's split steers the activations that meet it rather than the
  /// reverse: a column-parallel matmul splits its columns and gathers an
  /// input split along the sequence (Megatron's sequence parallelism), even
  /// when a constraint put that split there; the value is still kept as the
  /// constraint says.
  DenseMap<Value, int> pinned;

  /// How firmly `v`'s layout is given, for ordering an op's values. Vectors
  /// (biases, norm weights) do not steer: moving one is cheap, and the
  /// activation it meets keeps its layout.
  int firmness(Value v) {
    return cast<RankedTensorType>(v.getType()).getRank() >= 2 ? pinned.lookup(v) : 0;
  }

  /// The loops of `rule` as its values' layouts decide them: splits first
  /// (pinned values, then the largest tensor, then in order), so a split is
  /// never undone by a replicated value meeting it; then known replication.
  /// `sourceSize` is the size of the value each loop was decided from.
  SmallVector<std::optional<Axes>> decideLoops(const Rule &rule, SmallVector<int64_t> &sourceSize) {
    SmallVector<std::optional<Axes>> loops(rule.kinds.size());
    sourceSize.assign(rule.kinds.size(), std::numeric_limits<int64_t>::max());
    llvm::SmallDenseSet<int16_t> used;
    for (auto [l, kind] : llvm::enumerate(rule.kinds))
      if (kind == LoopKind::Whole)
        loops[l] = Axes();
    SmallVector<unsigned> order = largestFirst(rule.values);
    llvm::stable_sort(order, [&](unsigned a, unsigned b) {
      return firmness(rule.values[a]) > firmness(rule.values[b]);
    });
    for (bool splits : {true, false})
      for (unsigned i : order) {
        OpenLayout &layout = layoutOf(rule.values[i]);
        for (auto [d, expr] : llvm::enumerate(rule.maps[i].getResults())) {
          int64_t l = loopOf(expr);
          if (l < 0 || loops[l] || !layout[d] || layout[d]->empty() == splits)
            continue;
          if (llvm::any_of(*layout[d], [&](int16_t a) { return used.contains(a); }))
            continue;
          if (l < (int64_t)rule.divisors.size() && rule.divisors[l] &&
              rule.divisors[l] % mesh.span(*layout[d]))
            continue;
          loops[l] = *layout[d];
          sourceSize[l] = sizeOf(rule.values[i]);
          used.insert(layout[d]->begin(), layout[d]->end());
        }
      }
    return loops;
  }

  static int64_t sizeOf(Value v) { return cast<RankedTensorType>(v.getType()).getNumElements(); }

  /// One application of a rule; returns whether anything was decided.
  /// Unless `intoLarger`, a loop's decision (split or replicated) only
  /// reaches values no larger than the value it came from: a bias's split
  /// waits for the activation it is added to instead of deciding it.
  bool visit(const Rule &rule, bool intoLarger) {
    SmallVector<int64_t> sourceSize;
    SmallVector<std::optional<Axes>> loops = decideLoops(rule, sourceSize);

    // Fill the open dimensions from the decided loops. An axis another
    // dimension of the value already has (from another op's rule) stays
    // there: that dimension is left to be decided otherwise.
    bool changed = false;
    for (auto [v, map] : llvm::zip(rule.values, rule.maps)) {
      OpenLayout &layout = layoutOf(v);
      auto taken = [&](const Axes &axes) {
        return llvm::any_of(layout, [&](const std::optional<Axes> &other) {
          return other &&
                 llvm::any_of(axes, [&](int16_t a) { return llvm::is_contained(*other, a); });
        });
      };
      for (auto [d, expr] : llvm::enumerate(map.getResults())) {
        if (layout[d])
          continue;
        int64_t l = loopOf(expr);
        // A whole loop is what the op needs, not what its values must be:
        // it decides nothing for them (the partitioner gathers for the op).
        if (l < 0)
          layout[d] = rule.leading;
        else if (loops[l] && rule.kinds[l] != LoopKind::Whole &&
                 (intoLarger || sizeOf(v) <= sourceSize[l]) && !taken(*loops[l]))
          layout[d] = loops[l];
        else
          continue;
        changed = true;
      }
    }
    return changed;
  }

  void run(func::FuncOp fn) {
    for (BlockArgument arg : fn.getArguments()) {
      Layout layout = argLayout(fn, arg.getArgNumber());
      OpenLayout &open = layoutOf(arg);
      for (auto [d, axes] : llvm::enumerate(layout.dims))
        open[d] = axes;
    }
    // Constraints are decided before anything flows, so they win.
    fn.walk([&](ShardingConstraintOp c) {
      OpenLayout &open = layoutOf(c.getResult());
      for (auto [d, axes] : llvm::enumerate(Layout::fromAttr(c.getSharding()).dims))
        open[d] = axes;
      // A constraint on a function argument (ZeRO-3 gathering a param for
      // its use) is as firm as the argument; one on a repeat's body argument
      // (a carried gradient) is not.
      auto arg = dyn_cast<BlockArgument>(c.getInput());
      pinned[c.getResult()] =
          arg && arg.getOwner()->isEntryBlock() && isa<func::FuncOp>(arg.getOwner()->getParentOp())
              ? 2
              : 1;
    });
    for (BlockArgument arg : fn.getArguments())
      pinned[arg] = 2;
    fn.walk<WalkOrder::PreOrder>([&](RepeatOp repeat) {
      for (auto [operand, arg] : llvm::zip(repeat.getStacked(), repeat.getStackedArgs()))
        pinned[arg] = pinned.lookup(operand);
      for (auto [operand, arg] : llvm::zip(repeat.getInvariants(), repeat.getInvariantArgs()))
        pinned[arg] = pinned.lookup(operand);
    });
    // In program order: a repeat's ties come before its body.
    SmallVector<Rule, 0> rules;
    SmallVector<Operation *> recorded;
    DenseMap<Operation *, size_t> ruleOf;
    fn.walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (auto repeat = dyn_cast<RepeatOp>(op)) {
        rules.append(repeatRules(repeat, mesh));
        recorded.push_back(op);
      } else if (auto rule = dyn_cast<ShardingRuleOpInterface>(op)) {
        // ZeRO's layouts are storage: a storage constraint is resolved by
        // the partitioner, and an update reshards its gradient to the
        // state's layout; neither steers how the gradient is computed.
        auto constraint = dyn_cast<ShardingConstraintOp>(op);
        if (constraint && constraint.getStorage())
          return;
        Value gradient = updatedGradient(op);
        Rule r{SmallVector<Value>(op->getOperands()), rule.getIndexingMaps(), rule.getLoopKinds(),
               rule.getLoopShardDivisors()};
        r.values.append(op->result_begin(), op->result_end());
        // Layer indices (not tensors) have no layout.
        for (size_t i = r.values.size(); i-- > 0;)
          if (!isTensor(r.values[i]) ||
              (gradient && i < op->getNumOperands() && op->getOperand(i) == gradient)) {
            r.values.erase(r.values.begin() + i);
            r.maps.erase(r.maps.begin() + i);
          }
        ruleOf[op] = rules.size();
        rules.push_back(std::move(r));
        recorded.push_back(op);
      }
    });
    // To a fixpoint, forwards and backwards: first with splits flowing only
    // into values no larger than their source, then anywhere.
    for (bool intoLarger : {false, true}) {
      bool changed = true;
      while (changed) {
        changed = false;
        for (const Rule &rule : rules)
          changed |= visit(rule, intoLarger);
        for (const Rule &rule : llvm::reverse(rules))
          changed |= visit(rule, intoLarger);
      }
    }
    // Record the layouts (whatever is still open is replicated): each op's
    // results, and a repeat's body arguments.
    MLIRContext *ctx = fn.getContext();
    StringRef grid = mesh.getGrid().getValue();
    auto record = [&](ValueRange values) {
      SmallVector<Attribute> attrs;
      for (Value v : values) {
        if (!isTensor(v)) {
          attrs.push_back(Layout::replicated(0).toAttr(ctx, grid));
          continue;
        }
        Layout layout;
        for (const std::optional<Axes> &axes : layoutOf(v))
          layout.dims.push_back(axes.value_or(Axes()));
        attrs.push_back(layout.toAttr(ctx, grid));
      }
      return ArrayAttr::get(ctx, attrs);
    };
    // Each op's loops as the final layouts decide them, which dtl-partition
    // follows: the choice between two loops wanting one axis is made here,
    // once, with the priorities above.
    for (Operation *op : recorded) {
      op->setAttr(attr::shardings, record(op->getResults()));
      if (auto repeat = dyn_cast<RepeatOp>(op))
        op->setAttr(attr::argShardings, record(repeat.getBodyBlock().getArguments()));
      auto it = ruleOf.find(op);
      if (it == ruleOf.end())
        continue;
      SmallVector<int64_t> sourceSize;
      SmallVector<Attribute> loops;
      for (const std::optional<Axes> &axes : decideLoops(rules[it->second], sourceSize))
        loops.push_back(DenseI16ArrayAttr::get(ctx, axes.value_or(Axes())));
      op->setAttr(attr::loopShardings, ArrayAttr::get(ctx, loops));
    }
  }
};

struct PropagateSharding : dtl::impl::PropagateShardingBase<PropagateSharding> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MeshAttr mesh = getMesh(module);
    if (!mesh) {
      module.emitError("sharding propagation needs the module's mesh (`dtl.mesh`)");
      return signalPassFailure();
    }
    // A layout the user wrote on a dimension an op needs whole is not an
    // error: the op's loop stays whole and dtl-partition gathers the
    // operand for it, as after any other op.
    for (auto fn : module.getOps<func::FuncOp>())
      Propagation(mesh).run(fn);
  }
};

} // namespace
