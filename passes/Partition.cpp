//===- Partition.cpp - global program -> per-rank SPMD program ------------===//
//
// Every value gets its local (per-rank) type from its layout; where an op
// needs an operand in another layout than it has, the reshard is built from
// upstream `shard` collectives, once per (value, layout), right after the
// value is defined so every consumer can share it. A dtl.repeat's body is
// partitioned once, with the layouts propagation gave its arguments: its
// operands and what it yields are resharded to those.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace dtl {
#define GEN_PASS_DEF_PARTITION
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

struct FunctionPartitioner {
  MeshAttr mesh;
  bool annotate = false;
  DenseMap<Value, Layout> layouts{};
  /// Reshards made, by value and the (uniqued) target layout.
  DenseMap<std::pair<Value, Attribute>, Value> reshardCache{};

  /// The local type of a global tensor type under `layout`, or failure when a
  /// split does not divide its dimension.
  FailureOr<RankedTensorType> localType(Location loc, RankedTensorType global,
                                        const Layout &layout) {
    SmallVector<int64_t> shape(global.getShape());
    for (auto [d, axes] : llvm::enumerate(layout.dims)) {
      int64_t span = mesh.span(axes);
      if (shape[d] % span != 0)
        return emitError(loc, "dimension ")
               << d << " of size " << shape[d] << " cannot be split " << span << " ways";
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

  /// The cache key of `v` resharded to `dims`, keeping its pending partial
  /// sums or not: the target layout as a uniqued attribute.
  std::pair<Value, Attribute> key(Value v, ArrayRef<Axes> dims, bool keepPartial) {
    Layout target{SmallVector<Axes>(dims), keepPartial ? layouts.lookup(v).partial : Axes()};
    return {v, target.toAttr(v.getContext(), mesh.getGrid().getValue())};
  }

  /// Records `v` (made from `from`) as `from` in `layout`, for reuse.
  Value remember(Value from, Value v, const Layout &layout, bool keepPartial) {
    layouts[v] = layout;
    if (annotate && v.getDefiningOp())
      annotateLayouts(v.getDefiningOp());
    reshardCache[key(from, layout.dims, keepPartial)] = v;
    return v;
  }

  /// How many of a dimension's axes `have` stay where it wants `want`: the
  /// common prefix (a split stays only behind the same major axes).
  static size_t keptPrefix(const Axes &have, const Axes &want) {
    size_t kept = 0;
    while (kept < have.size() && kept < want.size() && have[kept] == want[kept])
      ++kept;
    return kept;
  }

  /// Axes that move from one dimension to another, as one all-to-all over
  /// them: the minor-most axes of the source dimension (`dims` keeps none of
  /// them there) that the target dimension wants right after the axes it
  /// has, as in [dp, tp] -> [(dp, tp), _]. The pieces of a rank's block are
  /// then exchanged within the moving axes' groups, in their order.
  struct Move {
    unsigned from, to;
    Axes axes;
  };
  static std::optional<Move> movedSplit(const Layout &from, ArrayRef<Axes> dims) {
    for (auto [d1, have] : llvm::enumerate(from.dims)) {
      // Only all the axes leaving a dimension move together: if some of
      // them went elsewhere, that dimension would need a gather anyway, and
      // one gather of them all (then slices) is one collective.
      size_t keep = keptPrefix(have, dims[d1]);
      if (keep < have.size()) {
        Axes moving(have.begin() + keep, have.end());
        if (llvm::any_of(moving, [&](int16_t a) { return llvm::is_contained(dims[d1], a); }))
          continue;
        for (auto [d2, want] : llvm::enumerate(dims)) {
          const Axes &there = from.dims[d2];
          if (d2 == d1 || want.size() < there.size() + moving.size() ||
              !std::equal(there.begin(), there.end(), want.begin()) ||
              !std::equal(moving.begin(), moving.end(), want.begin() + there.size()))
            continue;
          return Move{unsigned(d1), unsigned(d2), moving};
        }
      }
    }
    return std::nullopt;
  }

  RankedTensorType withDim(Value v, unsigned d, int64_t size) {
    auto type = cast<RankedTensorType>(v.getType());
    SmallVector<int64_t> shape(type.getShape());
    shape[d] = size;
    return RankedTensorType::get(shape, type.getElementType());
  }

  /// `v` in the layout `dims`, reducing pending partial sums unless kept.
  /// One collective at a time, each result cached, so consumers that need
  /// the same intermediate (say, the all-reduced value) share it:
  ///   1. pending sums: a reduce-scatter when the target splits a dimension
  ///      over exactly the pending axes, else an all-reduce;
  ///   2. an all-to-all where a split moves from one dimension to another;
  ///   3. all-gathers of every split that must go (before any new split, so
  ///      an axis is never on two dimensions at once);
  ///   4. all-slices (local) of every new split.
  /// The collectives are at `v`'s location, or `at` (a constraint's).
  Value reshard(Value v, ArrayRef<Axes> dims, bool keepPartial,
                std::optional<Location> at = std::nullopt) {
    Layout from = layouts.lookup(v);
    // A value cannot be split over an axis it is still a partial sum over:
    // such a target reduces (a reduce-scatter) whatever the caller keeps.
    if (keepPartial && llvm::any_of(dims, [&](const Axes &axes) {
          return llvm::any_of(axes, [&](int16_t a) { return llvm::is_contained(from.partial, a); });
        }))
      keepPartial = false;
    if (!isa<RankedTensorType>(v.getType()) ||
        (from.dims == dims && (keepPartial || from.partial.empty())))
      return v;
    auto cached = reshardCache.find(key(v, dims, keepPartial));
    if (cached != reshardCache.end())
      return cached->second;
    StringRef grid = mesh.getGrid().getValue();
    OpBuilder b = builderAfter(v);
    Location loc = at.value_or(v.getLoc());
    // A constant is made in the layout wanted (each rank its block of the
    // same value), not made whole and moved: nothing to communicate or
    // slice, and it fuses into its reader.
    if (auto constant = v.getDefiningOp<ConstantOp>(); constant && from.partial.empty()) {
      auto type = cast<RankedTensorType>(v.getType());
      SmallVector<int64_t> global(type.getShape());
      for (auto [d, axes] : llvm::enumerate(from.dims))
        global[d] *= mesh.span(axes);
      Layout target{SmallVector<Axes>(dims), {}};
      FailureOr<RankedTensorType> local = localType(loc, type.clone(global), target);
      if (succeeded(local)) {
        Value made = ConstantOp::create(b, loc, *local, constant.getValueAttr());
        return reshardCache[key(v, dims, keepPartial)] = remember(v, made, target, keepPartial);
      }
    }
    Value next;
    if (!keepPartial && !from.partial.empty()) {
      Layout reduced{from.dims, {}};
      std::optional<unsigned> scatterDim;
      for (auto [d, want] : llvm::enumerate(dims))
        if (from.dims[d].empty() && want == from.partial)
          scatterDim = d;
      auto reducedBefore = reshardCache.find(key(v, from.dims, false));
      if (reducedBefore != reshardCache.end()) {
        next = reducedBefore->second;
      } else if (scatterDim) {
        unsigned d = *scatterDim;
        int64_t size = cast<RankedTensorType>(v.getType()).getShape()[d];
        next = shard::ReduceScatterOp::create(b, loc, withDim(v, d, size / mesh.span(from.partial)),
                                              grid, from.partial, v, shard::ReductionKind::Sum,
                                              llvm::APInt(64, d));
        reduced.dims[d] = from.partial;
        remember(v, next, reduced, false);
      } else {
        next = shard::AllReduceOp::create(b, loc, v, grid, from.partial, shard::ReductionKind::Sum);
        remember(v, next, reduced, false);
      }
    } else if (std::optional<Move> move = movedSplit(from, dims)) {
      auto type = cast<RankedTensorType>(v.getType());
      SmallVector<int64_t> shape(type.getShape());
      int64_t span = mesh.span(move->axes);
      shape[move->from] *= span;
      shape[move->to] /= span;
      next = shard::AllToAllOp::create(b, loc, RankedTensorType::get(shape, type.getElementType()),
                                       grid, move->axes, v, llvm::APInt(64, move->to),
                                       llvm::APInt(64, move->from));
      Layout moved = from;
      moved.dims[move->to].append(move->axes.begin(), move->axes.end());
      moved.dims[move->from].resize(moved.dims[move->from].size() - move->axes.size());
      remember(v, next, moved, keepPartial);
    } else if (llvm::any_of(llvm::seq<size_t>(0, dims.size()), [&](size_t d) {
                 return keptPrefix(from.dims[d], dims[d]) < from.dims[d].size();
               })) {
      Layout gathered = from;
      next = v;
      for (auto [d, want] : llvm::enumerate(dims)) {
        size_t kept = keptPrefix(from.dims[d], want);
        if (kept == from.dims[d].size())
          continue;
        Axes leaving(from.dims[d].begin() + kept, from.dims[d].end());
        gathered.dims[d].resize(kept);
        // Gathering what was only sliced (a constraint splitting a
        // replicated value for an op that needs it whole) is the value
        // before the slice: no communication.
        auto slice = next.getDefiningOp<shard::AllSliceOp>();
        if (slice && slice.getGridAxes() == ArrayRef<int16_t>(leaving) &&
            slice.getSliceAxis().getSExtValue() == int64_t(d)) {
          next = slice.getInput();
          continue;
        }
        int64_t size = cast<RankedTensorType>(next.getType()).getShape()[d];
        OpBuilder after = builderAfter(next);
        next = shard::AllGatherOp::create(after, loc, withDim(next, d, size * mesh.span(leaving)),
                                          grid, leaving, next, llvm::APInt(64, d));
      }
      remember(v, next, gathered, keepPartial);
    } else {
      // Every dimension's axes are a prefix of what it wants: the new minor
      // axes are local slices of the rank's block.
      Layout sliced = from;
      next = v;
      for (auto [d, want] : llvm::enumerate(dims)) {
        if (from.dims[d] == want)
          continue;
        Axes added(want.begin() + from.dims[d].size(), want.end());
        int64_t size = cast<RankedTensorType>(next.getType()).getShape()[d];
        OpBuilder after = builderAfter(next);
        next = shard::AllSliceOp::create(after, loc, withDim(next, d, size / mesh.span(added)),
                                         next, grid, added, (int64_t)d);
        sliced.dims[d] = want;
      }
      remember(v, next, sliced, keepPartial);
    }
    Value result = reshard(next, dims, keepPartial, at);
    reshardCache[key(v, dims, keepPartial)] = result;
    return result;
  }

  /// The values constraints produced, by the location their reshards get:
  /// what an op then reshards them to is also for the constraint.
  DenseMap<Value, LocationAttr> constrained{};
  std::optional<Location> constraintAt(Value v) const {
    auto it = constrained.find(v);
    return it == constrained.end() ? std::nullopt : std::optional<Location>(it->second);
  }

  /// Each op's rule, taken while every type is still global: rules may look
  /// at sizes (a broadcast's repeated size-1 dims), which local types change.
  struct Rule {
    SmallVector<LoopKind> kinds;
    SmallVector<AffineMap> maps;
    SmallVector<unsigned> largestFirst;
    SmallVector<int64_t> divisors;
  };
  DenseMap<Operation *, Rule> rules{};

  LogicalResult partitionOp(ShardingRuleOpInterface op) {
    const Rule &rule = rules.at(op);
    ArrayRef<LoopKind> kinds = rule.kinds;
    ArrayRef<AffineMap> maps = rule.maps;
    auto resultShardings = op->getAttrOfType<ArrayAttr>(attr::shardings);
    if (!resultShardings)
      return op->emitError("has no `dtl.shardings`: run dtl-propagate-sharding first");

    // Loops: split as the largest tensors are (operands as they are, results
    // as propagation chose), so the smaller ones move; at equal sizes
    // operands first, so a split contraction leaves a partial sum to reduce
    // later rather than an operand to gather now. An axis splits one loop.
    SmallVector<std::optional<Axes>> loops(kinds.size());
    llvm::SmallDenseSet<int16_t> used;
    // Partial sums alike on every operand of an additive op (gradients
    // meeting) are added as they are and reduced once after, where a split
    // over their axes would reduce each operand first.
    unsigned numOperands = op->getNumOperands();
    Axes keptPartial = numOperands ? layouts.lookup(op->getOperand(0)).partial : Axes();
    if (!op.isAdditive() || !llvm::all_of(op->getOperands(), [&](Value v) {
          return layouts.lookup(v).partial == keptPartial;
        }))
      keptPartial.clear();
    auto claim = [&](int64_t l, const Axes &axes) {
      if (l < 0 || axes.empty() || loops[l] || kinds[l] == LoopKind::Whole ||
          (l < (int64_t)rule.divisors.size() && rule.divisors[l] &&
           rule.divisors[l] % mesh.span(axes)) ||
          llvm::any_of(
              axes,
              [&](int16_t a) { return used.contains(a) || llvm::is_contained(keptPartial, a); }))
        return;
      loops[l] = axes;
      used.insert(axes.begin(), axes.end());
    };
    // Propagation's choice first (with its priorities: a param's split
    // before an activation's), then whatever the tensors still show.
    if (auto decided = op->getAttrOfType<ArrayAttr>(attr::loopShardings)) {
      for (auto [l, axes] : llvm::enumerate(decided.getAsRange<DenseI16ArrayAttr>()))
        claim(l, withoutTrivialAxes(mesh, Layout{{Axes(axes.asArrayRef())}, {}}).dims[0]);
      op->removeAttr(attr::loopShardings);
    }
    Value gradient = updatedGradient(op);
    for (unsigned i : rule.largestFirst) {
      if (gradient && i < numOperands && op->getOperand(i) == gradient)
        continue;
      Layout layout =
          i < numOperands
              ? layouts.lookup(op->getOperand(i))
              : withoutTrivialAxes(
                    mesh, Layout::fromAttr(cast<ShardingAttr>(resultShardings[i - numOperands])));
      for (auto [d, expr] : llvm::enumerate(maps[i].getResults()))
        claim(loopOf(expr), layout.dims[d]);
    }
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
      op->setOperand(i, reshard(op->getOperand(i), dimsUnder(maps[i]), keep.contains(i),
                                constraintAt(op->getOperand(i))));
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
    localizePieces(op, loops);
    // Dropout keeps its layout: its mask is drawn by global index.
    if (annotate || isa<DropoutOp>(op))
      annotateLayouts(op);
    if (std::optional<Axes> last = loops.back())
      return splitLastLoop(op, *last, kinds.back());
    return success();
  }

  /// An interleaved split or concat whose dimension is split s ways holds
  /// n / s of its n blocks on each rank: locally it is interleaved n / s.
  void localizePieces(Operation *op, ArrayRef<std::optional<Axes>> loops) {
    auto rescale = [&](auto pieces) {
      if (const std::optional<Axes> &axes = loops[pieces.getDim()])
        pieces.setInterleave(pieces.getInterleave() / mesh.span(*axes));
    };
    if (auto split = dyn_cast<SplitOp>(op))
      rescale(split);
    else if (auto concat = dyn_cast<ConcatOp>(op))
      rescale(concat);
  }

  /// The log-sum-exp over split classes of (local logits, labels), made by
  /// the forward cross-entropy, for its gradient.
  DenseMap<std::pair<Value, Value>, Value> logSumExps{};

  /// An op whose last loop (a table's rows, the classes) is split over
  /// `axes`: embeddings learn the axes (each rank holds a block of rows); a
  /// cross-entropy or an argmax becomes its ranks' statistics, gathered and
  /// combined; the cross-entropy's gradient takes the combined log-sum-exp.
  LogicalResult splitLastLoop(Operation *op, const Axes &axes, LoopKind kind) {
    MLIRContext *ctx = op->getContext();
    auto axesAttr = DenseI16ArrayAttr::get(ctx, axes);
    if (auto embedding = dyn_cast<EmbeddingOp>(op))
      embedding.setRowAxesAttr(axesAttr);
    else if (auto gradient = dyn_cast<EmbeddingGradOp>(op))
      gradient.setRowAxesAttr(axesAttr);
    else if (auto ce = dyn_cast<CrossEntropyOp>(op)) {
      OpBuilder b(op);
      auto [loss, lse] = combinedLogSumExp(b, ce.getLoc(), ce.getLogits(), ce.getLabels(), axes);
      ce.getResult().replaceAllUsesWith(loss);
      ce.erase();
    } else if (auto gradient = dyn_cast<CrossEntropyGradOp>(op)) {
      Value lse = logSumExps.lookup({gradient.getLogits(), gradient.getLabels()});
      if (!lse || !lse.getParentBlock()->findAncestorOpInBlock(*op)) {
        OpBuilder b(op);
        lse = combinedLogSumExp(b, gradient.getLoc(), gradient.getLogits(), gradient.getLabels(),
                                axes)
                  .second;
      }
      gradient.getLseMutable().assign(lse);
      gradient.setClassAxesAttr(axesAttr);
    } else if (auto correct = dyn_cast<CorrectOp>(op)) {
      OpBuilder b(op);
      Location loc = correct.getLoc();
      Value labels = correct.getLabels();
      Value parts =
          ArgmaxPartialOp::create(b, loc, statistics(b, labels, 2), correct.getLogits(), axesAttr);
      Value hits = CorrectCombineOp::create(b, loc, correct.getType(),
                                            gatherStatistics(b, loc, parts, labels, axes), labels);
      layouts[hits] = Layout{layouts.lookup(labels).dims, {}};
      if (annotate)
        annotateLayouts(hits.getDefiningOp());
      correct.getResult().replaceAllUsesWith(hits);
      correct.erase();
    } else if (kind == LoopKind::Combined) {
      // Computing such an op on its block alone would be silently wrong.
      return op->emitError("has a split combined loop that dtl-partition cannot combine");
    }
    return success();
  }

  /// The f32 type of `parts` statistics per example of `labels`.
  static RankedTensorType statistics(OpBuilder &b, Value labels, int64_t parts) {
    SmallVector<int64_t> shape{parts};
    llvm::append_range(shape, cast<RankedTensorType>(labels.getType()).getShape());
    return RankedTensorType::get(shape, b.getF32Type());
  }

  /// Each rank's [2, rows] statistics `parts`, all-gathered over `axes`
  /// into [2 n, rows] (rank-major).
  Value gatherStatistics(OpBuilder &b, Location loc, Value parts, Value labels, const Axes &axes) {
    Value gathered =
        shard::AllGatherOp::create(b, loc, statistics(b, labels, 2 * mesh.span(axes)),
                                   mesh.getGrid().getValue(), axes, parts, llvm::APInt(64, 0));
    Layout partsLayout{{Axes()}, {}};
    llvm::append_range(partsLayout.dims, layouts.lookup(labels).dims);
    layouts[parts] = layouts[gathered] = partsLayout;
    if (annotate)
      for (Value v : {parts, gathered})
        annotateLayouts(v.getDefiningOp());
    return gathered;
  }

  /// Megatron's vocab-parallel cross-entropy: each rank's [2, rows]
  /// statistics (its block's log-sum-exp and label logit), all-gathered over
  /// `axes` and combined into (loss, log-sum-exp) per row.
  std::pair<Value, Value> combinedLogSumExp(OpBuilder &b, Location loc, Value logits, Value labels,
                                            const Axes &axes) {
    Value parts = CrossEntropyPartialOp::create(b, loc, statistics(b, labels, 2), logits, labels,
                                                b.getDenseI16ArrayAttr(axes));
    auto rows =
        RankedTensorType::get(cast<RankedTensorType>(labels.getType()).getShape(), b.getF32Type());
    auto combine = CrossEntropyCombineOp::create(
        b, loc, rows, rows, gatherStatistics(b, loc, parts, labels, axes), labels);
    layouts[combine.getResult()] = layouts[combine.getLse()] =
        Layout{layouts.lookup(labels).dims, {}};
    if (annotate)
      annotateLayouts(combine);
    logSumExps[{logits, labels}] = combine.getLse();
    return {combine.getResult(), combine.getLse()};
  }

  void annotateLayouts(Operation *op) {
    SmallVector<Attribute> attrs;
    for (Value r : op->getResults())
      attrs.push_back(layouts.lookup(r).toAttr(op->getContext(), mesh.getGrid().getValue()));
    op->setAttr(attr::shardings, ArrayAttr::get(op->getContext(), attrs));
  }

  /// `layout` of a value of global type `type`: its local type, or failure
  /// when a split does not divide its dimension.
  LogicalResult localize(Value v, const Layout &layout, Location loc) {
    auto global = dyn_cast<RankedTensorType>(v.getType());
    if (!global)
      return success(); // a layer index
    FailureOr<RankedTensorType> local = localType(loc, global, layout);
    if (failed(local))
      return failure();
    v.setType(*local);
    layouts[v] = layout;
    return success();
  }

  /// The layouts propagation recorded in `name` on `op`, without trivial axes.
  SmallVector<Layout> recorded(Operation *op, StringRef name) {
    SmallVector<Layout> out;
    if (auto list = op->getAttrOfType<ArrayAttr>(name))
      for (Attribute a : list)
        out.push_back(withoutTrivialAxes(mesh, Layout::fromAttr(cast<ShardingAttr>(a))));
    return out;
  }

  /// Operands and yielded values are resharded to the body arguments'
  /// layouts; stacked (or summed) results keep pending partial sums (one
  /// reduction after the loop, not one per layer or micro-batch).
  LogicalResult partitionRepeat(RepeatOp repeat) {
    SmallVector<Layout> argLayouts = recorded(repeat, attr::argShardings);
    SmallVector<Layout> resultLayouts = recorded(repeat, attr::shardings);
    Block &body = repeat.getBodyBlock();
    if (argLayouts.size() != body.getNumArguments() ||
        resultLayouts.size() != repeat.getNumResults())
      return repeat.emitError("has no `dtl.arg_shardings`: run dtl-propagate-sharding first");
    // Pipeline stages each run their block of the iterations (uneven
    // stages: each its slots, dtl-schedule-pipeline runs its layers).
    Axes layers;
    if (repeat.runsAsStages()) {
      layers = stageAxes(repeat, mesh);
      repeat.setCount(repeat.getStageLayers() ? repeat.slots() / mesh.span(layers)
                                              : repeat.getCount() / mesh.span(layers));
    }
    auto stackedDims = [&](const Layout &slice) {
      SmallVector<Axes> dims{layers};
      dims.append(slice.dims.begin(), slice.dims.end());
      return dims;
    };
    size_t carries = repeat.getInits().size(), stacked = repeat.getStacked().size();
    for (OpOperand &operand : repeat->getOpOperands()) {
      unsigned i = operand.getOperandNumber();
      const Layout &arg = argLayouts[1 + i];
      bool isStacked = i >= carries && i < carries + stacked;
      operand.set(reshard(operand.get(), isStacked ? stackedDims(arg) : arg.dims, false));
    }
    for (auto [arg, layout] : llvm::zip(body.getArguments(), argLayouts))
      if (failed(localize(arg, layout, repeat.getLoc())))
        return failure();
    if (failed(partitionBlock(body)))
      return failure();
    YieldOp yield = repeat.getYield();
    SmallVector<Layout> yieldedLayouts;
    for (OpOperand &operand : yield->getOpOperands()) {
      unsigned i = operand.getOperandNumber();
      if (i < carries) {
        operand.set(reshard(operand.get(), argLayouts[1 + i].dims, false));
        yieldedLayouts.push_back(argLayouts[1 + i]);
        continue;
      }
      // A sum keeps the layout the body gives it (its users after the loop
      // reshard it once); a stacked slice takes the result's.
      if (repeat.getAccumulate()) {
        yieldedLayouts.push_back(layouts.lookup(operand.get()));
        continue;
      }
      SmallVector<Axes> slice(ArrayRef<Axes>(resultLayouts[i].dims).drop_front());
      operand.set(reshard(operand.get(), slice, /*keepPartial=*/true));
      Layout layout = layouts.lookup(operand.get());
      yieldedLayouts.push_back(Layout{stackedDims(layout), layout.partial});
    }
    for (auto [result, layout] : llvm::zip(repeat.getResults(), yieldedLayouts))
      if (failed(localize(result, layout, repeat.getLoc())))
        return failure();
    repeat->removeAttr(attr::argShardings);
    repeat->removeAttr(attr::shardings);
    if (annotate) {
      annotateLayouts(repeat);
      SmallVector<Attribute> args;
      for (BlockArgument arg : body.getArguments())
        args.push_back(layouts.lookup(arg).toAttr(repeat.getContext(), mesh.getGrid().getValue()));
      repeat->setAttr(attr::argShardings, ArrayAttr::get(repeat.getContext(), args));
    }
    return success();
  }

  LogicalResult partitionBlock(Block &block) {
    for (Operation &op : llvm::make_early_inc_range(block.without_terminator())) {
      if (isa<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllGatherOp, shard::AllSliceOp,
              shard::AllToAllOp>(op))
        continue;
      if (auto constraint = dyn_cast<ShardingConstraintOp>(op)) {
        Location at =
            NameLoc::get(StringAttr::get(op.getContext(), constraintReshard), constraint.getLoc());
        Value resharded = reshard(
            constraint.getInput(),
            withoutTrivialAxes(mesh, Layout::fromAttr(constraint.getSharding())).dims, false, at);
        constrained[resharded] = at;
        constraint.getResult().replaceAllUsesWith(resharded);
        constraint.erase();
        continue;
      }
      if (auto repeat = dyn_cast<RepeatOp>(op)) {
        if (failed(partitionRepeat(repeat)))
          return failure();
        continue;
      }
      auto rule = dyn_cast<ShardingRuleOpInterface>(op);
      if (!rule)
        return op.emitError("has no sharding rule; cannot partition it");
      if (failed(partitionOp(rule)))
        return failure();
    }
    return success();
  }

  LogicalResult run(func::FuncOp fn) {
    Block &body = fn.getBody().front();
    fn.walk([&](ShardingRuleOpInterface op) {
      SmallVector<Value> values(op->getOperands());
      values.append(op->result_begin(), op->result_end());
      rules[op] = Rule{op.getLoopKinds(), op.getIndexingMaps(), largestFirst(values),
                       op.getLoopShardDivisors()};
    });
    MLIRContext *ctx = fn.getContext();
    for (BlockArgument arg : fn.getArguments()) {
      fn.setArgAttr(arg.getArgNumber(), attr::globalType, TypeAttr::get(arg.getType()));
      if (failed(localize(arg, withoutTrivialAxes(mesh, argLayout(fn, arg.getArgNumber())),
                          arg.getLoc())))
        return failure();
    }
    if (failed(partitionBlock(body)))
      return failure();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    SmallVector<Type> resultTypes;
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      Layout want = Layout::replicated(cast<RankedTensorType>(v.getType()).getRank());
      if (auto s = fn.getResultAttrOfType<ShardingAttr>(i, attr::sharding))
        want = withoutTrivialAxes(mesh, Layout::fromAttr(s));
      ret.setOperand(i, reshard(v, want.dims, false));
      resultTypes.push_back(ret.getOperand(i).getType());
    }
    fn.setType(FunctionType::get(ctx, body.getArgumentTypes(), resultTypes));
    // A constraint's slice that every reader gathered back is dead (later
    // slices first: one may be all that reads an earlier one).
    SmallVector<shard::AllSliceOp> slices;
    fn.walk([&](shard::AllSliceOp slice) { slices.push_back(slice); });
    for (shard::AllSliceOp slice : llvm::reverse(slices))
      if (slice->use_empty())
        slice.erase();
    // So is a constant every reader made again in its own layout.
    fn.walk([](ConstantOp constant) {
      if (constant->use_empty())
        constant.erase();
    });
    return success();
  }
};

struct Partition : dtl::impl::PartitionBase<Partition> {
  using PartitionBase::PartitionBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MeshAttr mesh = getMesh(module);
    if (!mesh) {
      module.emitError("partitioning needs the module's mesh (`dtl.mesh`)");
      return signalPassFailure();
    }
    for (auto fn : module.getOps<func::FuncOp>())
      if (failed(FunctionPartitioner{mesh, annotate.getValue()}.run(fn)))
        return signalPassFailure();
  }
};

} // namespace
