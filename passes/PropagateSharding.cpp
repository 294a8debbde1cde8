//===- PropagateSharding.cpp - choose a sharding for every value ----------===//
//
// Factor-style propagation (as in GSPMD/Shardy): each op's loops tie its
// operand and result dimensions together; a split known on one dimension
// flows through the loop to every other dimension it indexes.
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

struct Propagation {
  DenseMap<Value, OpenLayout> layouts;

  OpenLayout &layoutOf(Value v) {
    auto it = layouts.find(v);
    if (it != layouts.end())
      return it->second;
    unsigned rank = cast<RankedTensorType>(v.getType()).getRank();
    return layouts[v] = OpenLayout(rank);
  }

  /// One application of an op's rule; returns whether anything was decided.
  /// Unless `intoLarger`, a loop's decision (split or replicated) only
  /// reaches values no larger than the value it came from: a bias's split
  /// waits for the activation it is added to instead of deciding it.
  bool visit(ShardingRuleOpInterface op, bool intoLarger) {
    SmallVector<LoopKind> kinds = op.getLoopKinds();
    SmallVector<AffineMap> maps = op.getIndexingMaps();
    SmallVector<Value> values(op->getOperands());
    values.append(op->result_begin(), op->result_end());

    // Decide the loops from what the values already know: splits first
    // (operands, then results, first come first served), so a split is never
    // undone by a replicated value meeting it; then known replication.
    SmallVector<std::optional<Axes>> loops(kinds.size());
    SmallVector<int64_t> sourceSize(kinds.size(), std::numeric_limits<int64_t>::max());
    llvm::SmallDenseSet<int16_t> used;
    for (auto [l, kind] : llvm::enumerate(kinds))
      if (kind == LoopKind::Whole)
        loops[l] = Axes();
    auto sizeOf = [](Value v) { return cast<RankedTensorType>(v.getType()).getNumElements(); };
    SmallVector<unsigned> order = largestFirst(values);
    for (bool splits : {true, false})
      for (unsigned i : order) {
        Value v = values[i];
        AffineMap map = maps[i];
        OpenLayout &layout = layoutOf(v);
        for (auto [d, expr] : llvm::enumerate(map.getResults())) {
          int64_t l = loopOf(expr);
          if (l < 0 || loops[l] || !layout[d] || layout[d]->empty() == splits)
            continue;
          if (llvm::any_of(*layout[d], [&](int16_t a) { return used.contains(a); }))
            continue;
          loops[l] = *layout[d];
          sourceSize[l] = sizeOf(v);
          used.insert(layout[d]->begin(), layout[d]->end());
        }
      }

    // Fill the open dimensions from the decided loops.
    bool changed = false;
    for (auto [v, map] : llvm::zip(values, maps)) {
      OpenLayout &layout = layoutOf(v);
      for (auto [d, expr] : llvm::enumerate(map.getResults())) {
        if (layout[d])
          continue;
        int64_t l = loopOf(expr);
        if (l < 0)
          layout[d] = Axes();
        else if (loops[l] && (intoLarger || sizeOf(v) <= sourceSize[l]))
          layout[d] = loops[l];
        else
          continue;
        changed = true;
      }
    }
    return changed;
  }

  /// A sharding the user wrote (an annotated argument or a constraint) that
  /// splits a dimension an op needs whole (the classes of cross_entropy)
  /// is an error naming both; reported on the user's function only.
  LogicalResult checkWholeLoops(func::FuncOp fn, MeshAttr mesh) {
    ArrayRef<StringAttr> names = mesh.getNames();
    bool ok = true;
    llvm::DenseSet<std::pair<Location, Location>> reported;
    fn.walk([&](ShardingRuleOpInterface op) {
      SmallVector<LoopKind> kinds = op.getLoopKinds();
      SmallVector<AffineMap> maps = op.getIndexingMaps();
      for (auto [operand, map] : llvm::zip(op->getOperands(), maps)) {
        Layout requested;
        if (auto arg = dyn_cast<BlockArgument>(operand))
          requested = argLayout(fn, arg.getArgNumber());
        else if (auto c = operand.getDefiningOp<ShardingConstraintOp>())
          requested = Layout::fromAttr(c.getSharding());
        else
          continue;
        for (auto [d, expr] : llvm::enumerate(map.getResults())) {
          int64_t l = loopOf(expr);
          if (l < 0 || kinds[l] != LoopKind::Whole || requested.dims[d].empty())
            continue;
          std::string axes;
          for (int16_t a : requested.dims[d])
            axes += (axes.empty() ? "" : ", ") + names[a].getValue().str();
          ok = false;
          // The eval metrics repeat the loss's ops at its location: say it once.
          if (!reported.insert({op->getLoc(), operand.getLoc()}).second)
            continue;
          InFlightDiagnostic diag = emitError(op->getLoc())
                                    << op->getName().stripDialect() << " needs dimension " << d
                                    << " of its operand whole, but the operand's sharding splits "
                                       "it over "
                                    << axes;
          diag.attachNote(operand.getLoc()) << "the sharding is requested here";
        }
      }
    });
    return success(ok);
  }

  void run(func::FuncOp fn, MeshAttr mesh) {
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
    });
    SmallVector<ShardingRuleOpInterface> ops;
    fn.walk([&](ShardingRuleOpInterface op) { ops.push_back(op); });
    // To a fixpoint, forwards and backwards: first with splits flowing only
    // into values no larger than their source, then anywhere.
    for (bool intoLarger : {false, true}) {
      bool changed = true;
      while (changed) {
        changed = false;
        for (ShardingRuleOpInterface op : ops)
          changed |= visit(op, intoLarger);
        for (ShardingRuleOpInterface op : llvm::reverse(ops))
          changed |= visit(op, intoLarger);
      }
    }
    // Record the result layouts; whatever is still open is replicated.
    MLIRContext *ctx = fn.getContext();
    for (ShardingRuleOpInterface op : ops) {
      SmallVector<Attribute> attrs;
      for (Value r : op->getResults()) {
        Layout layout;
        for (const std::optional<Axes> &axes : layoutOf(r))
          layout.dims.push_back(axes.value_or(Axes()));
        attrs.push_back(layout.toAttr(ctx, mesh.getGrid().getValue()));
      }
      op->setAttr(attr::shardings, ArrayAttr::get(ctx, attrs));
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
    auto model = module->getAttrOfType<FlatSymbolRefAttr>(attr::model);
    for (auto fn : module.getOps<func::FuncOp>()) {
      Propagation propagation;
      if (model && fn.getSymName() == model.getValue() &&
          failed(propagation.checkWholeLoops(fn, mesh)))
        return signalPassFailure();
      propagation.run(fn, mesh);
    }
  }
};

} // namespace
