//===- Partition.cpp - global program -> per-rank SPMD program ------------===//
//
// Every value gets its local (per-rank) type from its layout; where an op
// needs an operand in another layout than it has, the reshard is built from
// upstream `shard` collectives, once per (value, layout), right after the
// value is defined so every consumer can share it.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/Sharding.h"

#include "mlir/IR/Builders.h"

namespace dtl {
#define GEN_PASS_DEF_PARTITION
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

struct FunctionPartitioner {
  shard::GridOp mesh;
  DenseMap<Value, Layout> layouts;
  std::map<std::pair<void *, std::string>, Value> reshardCache;

  /// The local type of a global tensor type under `layout`, or failure when a
  /// split does not divide its dimension.
  FailureOr<RankedTensorType> localType(Location loc, RankedTensorType global,
                                        const Layout &layout) {
    SmallVector<int64_t> shape(global.getShape());
    for (auto [d, axes] : llvm::enumerate(layout.dims)) {
      int64_t span = meshSpan(mesh, axes);
      if (shape[d] % span != 0)
        return emitError(loc, "dimension ") << d << " of size " << shape[d]
                                            << " cannot be split " << span << " ways";
      shape[d] /= span;
    }
    return RankedTensorType::get(shape, global.getElementType());
  }

  OpBuilder builderAfter(Value v) {
    OpBuilder b(v.getContext());
    if (Operation *def = v.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(cast<BlockArgument>(v).getOwner());
    return b;
  }

  static std::string key(ArrayRef<Axes> dims, bool keepPartial) {
    std::string s = keepPartial ? "p" : "r";
    for (const Axes &axes : dims) {
      s += '|';
      for (int16_t a : axes)
        s += std::to_string(a) + ",";
    }
    return s;
  }

  /// `v` in the layout `dims`, reducing pending partial sums unless kept.
  Value reshard(Value v, ArrayRef<Axes> dims, bool keepPartial) {
    Layout from = layouts.lookup(v);
    if (from.dims == dims && (keepPartial || from.partial.empty()))
      return v;
    auto cacheKey = std::make_pair(v.getAsOpaquePointer(), key(dims, keepPartial));
    if (auto it = reshardCache.find(cacheKey); it != reshardCache.end())
      return it->second;
    StringRef grid = mesh.getSymName();
    Value current = v;
    Layout layout = from;
    auto localOf = [&](Value x) { return cast<RankedTensorType>(x.getType()); };
    if (!keepPartial && !layout.partial.empty()) {
      OpBuilder b = builderAfter(current);
      current = shard::AllReduceOp::create(b, v.getLoc(), current, grid, layout.partial,
                                           shard::ReductionKind::Sum);
      layout.partial.clear();
    }
    for (auto [d, want] : llvm::enumerate(dims)) {
      if (layout.dims[d] == want)
        continue;
      if (!layout.dims[d].empty()) {
        OpBuilder b = builderAfter(current);
        SmallVector<int64_t> shape(localOf(current).getShape());
        shape[d] *= meshSpan(mesh, layout.dims[d]);
        auto type = RankedTensorType::get(shape, localOf(current).getElementType());
        current = shard::AllGatherOp::create(b, v.getLoc(), type, grid, layout.dims[d],
                                             current, llvm::APInt(64, d));
        layout.dims[d].clear();
      }
      if (!want.empty()) {
        OpBuilder b = builderAfter(current);
        SmallVector<int64_t> shape(localOf(current).getShape());
        shape[d] /= meshSpan(mesh, want);
        auto type = RankedTensorType::get(shape, localOf(current).getElementType());
        current = shard::AllSliceOp::create(b, v.getLoc(), type, current, grid, want, (int64_t)d);
        layout.dims[d] = want;
      }
    }
    layouts[current] = layout;
    reshardCache[cacheKey] = current;
    return current;
  }

  /// Each op's rule, taken while every type is still global: rules may look
  /// at sizes (a broadcast's repeated size-1 dims), which local types change.
  struct Rule {
    SmallVector<LoopKind> kinds;
    SmallVector<AffineMap> maps;
  };
  DenseMap<Operation *, Rule> rules;

  LogicalResult partitionOp(ShardingRuleOpInterface op) {
    const Rule &rule = rules.at(op);
    ArrayRef<LoopKind> kinds = rule.kinds;
    ArrayRef<AffineMap> maps = rule.maps;
    auto resultShardings = op->getAttrOfType<ArrayAttr>(attr::shardings);
    if (!resultShardings)
      return op->emitError("has no `dtl.shardings`: run dtl-propagate-sharding first");
    unsigned numOperands = op->getNumOperands();

    // Loops: from the chosen result layouts, then (sum loops) from operands.
    SmallVector<std::optional<Axes>> loops(kinds.size());
    llvm::SmallDenseSet<int16_t> used;
    auto claim = [&](int64_t l, const Axes &axes) {
      if (l < 0 || loops[l] || kinds[l] == LoopKind::Whole ||
          llvm::any_of(axes, [&](int16_t a) { return used.contains(a); }))
        return;
      loops[l] = axes;
      used.insert(axes.begin(), axes.end());
    };
    SmallVector<Layout> resultLayouts;
    for (auto [i, r] : llvm::enumerate(op->getResults())) {
      resultLayouts.push_back(Layout::fromAttr(cast<ShardingAttr>(resultShardings[i])));
      for (auto [d, expr] : llvm::enumerate(maps[numOperands + i].getResults()))
        claim(loopOf(expr), resultLayouts.back().dims[d]);
    }
    for (auto [operand, map] : llvm::zip(op->getOperands(), maps))
      for (auto [d, expr] : llvm::enumerate(map.getResults()))
        if (!layouts.lookup(operand).dims[d].empty())
          claim(loopOf(expr), layouts.lookup(operand).dims[d]);
    auto dimsUnder = [&](AffineMap map) {
      SmallVector<Axes> dims;
      for (AffineExpr expr : map.getResults()) {
        int64_t l = loopOf(expr);
        dims.push_back(l >= 0 && loops[l] ? *loops[l] : Axes());
      }
      return dims;
    };

    // Which operands may stay partial sums: not when the op splits its work
    // over a pending axis (a value cannot be both split and partial on it).
    SmallVector<unsigned> partialOperands;
    for (unsigned i = 0; i < numOperands; ++i)
      if (!layouts.lookup(op->getOperand(i)).partial.empty())
        partialOperands.push_back(i);
    bool pendingAxisSplits = llvm::any_of(partialOperands, [&](unsigned i) {
      return llvm::any_of(layouts.lookup(op->getOperand(i)).partial,
                          [&](int16_t a) { return used.contains(a); });
    });
    if (pendingAxisSplits)
      partialOperands.clear();
    llvm::SmallDenseSet<unsigned> keep;
    if (partialOperands.size() == 1 && op.isLinearIn(partialOperands[0]))
      keep.insert(partialOperands[0]);
    if (op.isAdditive() && partialOperands.size() == numOperands &&
        llvm::all_of(partialOperands, [&](unsigned i) {
          return layouts.lookup(op->getOperand(i)).partial ==
                 layouts.lookup(op->getOperand(0)).partial;
        }))
      keep.insert(partialOperands.begin(), partialOperands.end());

    Axes resultPartial;
    if (!keep.empty())
      resultPartial = layouts.lookup(op->getOperand(*keep.begin())).partial;
    for (auto [l, kind] : llvm::enumerate(kinds))
      if (kind == LoopKind::Sum && loops[l])
        resultPartial.append(loops[l]->begin(), loops[l]->end());

    for (unsigned i = 0; i < numOperands; ++i)
      op->setOperand(i, reshard(op->getOperand(i), dimsUnder(maps[i]), keep.contains(i)));
    for (auto [i, r] : llvm::enumerate(op->getResults())) {
      Layout layout{dimsUnder(maps[numOperands + i]), resultPartial};
      FailureOr<RankedTensorType> local =
          localType(op->getLoc(), cast<RankedTensorType>(r.getType()), layout);
      if (failed(local))
        return failure();
      r.setType(*local);
      layouts[r] = layout;
    }
    op->removeAttr(attr::shardings);
    return success();
  }

  LogicalResult run(func::FuncOp fn) {
    Block &body = fn.getBody().front();
    fn.walk([&](ShardingRuleOpInterface op) {
      rules[op] = Rule{op.getLoopKinds(), op.getIndexingMaps()};
    });
    MLIRContext *ctx = fn.getContext();
    SmallVector<Type> argTypes;
    for (BlockArgument arg : fn.getArguments()) {
      Layout layout = argLayout(fn, arg.getArgNumber());
      auto global = cast<RankedTensorType>(arg.getType());
      FailureOr<RankedTensorType> local = localType(arg.getLoc(), global, layout);
      if (failed(local))
        return failure();
      fn.setArgAttr(arg.getArgNumber(), attr::globalType, TypeAttr::get(global));
      arg.setType(*local);
      argTypes.push_back(*local);
      layouts[arg] = layout;
    }
    for (Operation &op : llvm::make_early_inc_range(body.without_terminator())) {
      if (isa<shard::AllReduceOp, shard::AllGatherOp, shard::AllSliceOp>(op))
        continue;
      auto rule = dyn_cast<ShardingRuleOpInterface>(op);
      if (!rule)
        return op.emitError("has no sharding rule; cannot partition it");
      if (failed(partitionOp(rule)))
        return failure();
    }
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    SmallVector<Type> resultTypes;
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      Layout want = Layout::replicated(cast<RankedTensorType>(v.getType()).getRank());
      if (auto s = fn.getResultAttrOfType<ShardingAttr>(i, attr::sharding))
        want = Layout::fromAttr(s);
      ret.setOperand(i, reshard(v, want.dims, false));
      resultTypes.push_back(ret.getOperand(i).getType());
    }
    fn.setType(FunctionType::get(ctx, argTypes, resultTypes));
    return success();
  }
};

struct Partition : dtl::impl::PartitionBase<Partition> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    shard::GridOp mesh = getMesh(module);
    if (!mesh) {
      module.emitError("partitioning needs a shard.grid (the mesh)");
      return signalPassFailure();
    }
    for (auto fn : module.getOps<func::FuncOp>())
      if (failed(FunctionPartitioner{mesh}.run(fn)))
        return signalPassFailure();
  }
};

} // namespace
