//===- PlanBuffers.cpp - a place for every value: arena, result, slice ----===//
//
// One arena per step function, as Triton's shared-memory allocation: live
// ranges from mlir::Liveness over a pre-order numbering of the ops (a
// dtl.repeat spans its body), first fit in definition order, offsets written
// into the IR as #dtl.place attributes that the printers and --explain read.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Analysis/Liveness.h"

#include <map>

namespace dtl {
#define GEN_PASS_DEF_PLANBUFFERS
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// Buffers start on cache-line (and AVX-512 vector) boundaries.
constexpr int64_t kAlignment = 64;

int64_t aligned(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

class Planner {
public:
  /// With `overwrite`, cross-entropy's gradient may be written over the
  /// logits, and with `overwriteLoops` too, a fused loop over a dying input.
  Planner(func::FuncOp fn, int64_t realBytes, bool overwrite, bool overwriteLoops)
      : fn_(fn), liveness_(fn), realBytes_(realBytes), overwrite_(overwrite),
        overwriteLoops_(overwriteLoops) {}

  /// Plans every value's place; returns the arena's size.
  int64_t plan() {
    int64_t next = 0;
    number(fn_.getBody().front(), next);
    collect(fn_.getBody().front());
    arenaBytes_ = assignOffsets();
    return arenaBytes_;
  }

  /// Writes the plan into the IR.
  void write() {
    MLIRContext *ctx = fn_.getContext();
    for (auto &[op, places] : places_) {
      SmallVector<Attribute> attrs;
      for (auto [kind, index] : places)
        attrs.push_back(PlaceAttr::get(ctx, kind, index));
      op->setAttr(attr::place, ArrayAttr::get(ctx, attrs));
    }
    fn_->setAttr(attr::arenaBytes, IntegerAttr::get(IntegerType::get(ctx, 64), arenaBytes_));
  }

private:
  /// Numbers the ops in pre-order; an op spans its regions (a repeat's
  /// body, a pipeline's stage cases one after another, so stages share
  /// the arena).
  void number(Block &block, int64_t &next) {
    for (Operation &op : block) {
      begin_[&op] = next++;
      for (Region &region : op.getRegions())
        if (!isa<FusedOp>(op))
          for (Block &inner : region)
            number(inner, next);
      end_[&op] = next - 1;
    }
  }

  /// `v` and the views of it, transitively.
  SmallVector<Value> aliases(Value v) {
    SmallVector<Value> all{v};
    for (size_t i = 0; i < all.size(); ++i)
      for (Operation *user : all[i].getUsers())
        if (auto view = dyn_cast<ViewLikeOpInterface>(user); view && view.getViewSource() == all[i])
          all.push_back(user->getResult(0));
    return all;
  }

  /// The last position at which `v` (or a view of it) is read.
  int64_t lastUse(Value v, Operation *def) {
    int64_t last = begin_[def];
    for (Value alias : aliases(v)) {
      Block *block = alias.getParentBlock();
      Operation *start = alias.getDefiningOp() ? alias.getDefiningOp() : &block->front();
      if (Operation *end = liveness_.getLiveness(block)->getEndOperation(alias, start))
        last = std::max(last, end_[end]);
    }
    return last;
  }

  /// Places for the results of the ops of `block` (and of repeat bodies in it).
  void collect(Block &block) {
    auto repeat = dyn_cast<RepeatOp>(block.getParentOp());
    for (Operation &op : block) {
      if (op.getNumResults() == 0)
        continue;
      SmallVector<std::pair<PlaceKind, int64_t>> &places = places_[&op];
      for (Value r : op.getResults()) {
        // A send's result is only the upstream op's form: nothing reads it.
        if (isa<ViewLikeOpInterface, shard::SendOp>(op) || !isa<RankedTensorType>(r.getType())) {
          places.push_back({PlaceKind::view, 0});
        } else if (op.hasAttr(attr::inPlace)) {
          places.push_back({PlaceKind::result, returnIndex(r)});
        } else if (std::optional<int64_t> slice = stackedSlot(repeat, r)) {
          places.push_back({PlaceKind::slice, *slice});
        } else {
          places.push_back({PlaceKind::arena, 0});
          int64_t bytes = aligned(std::max<int64_t>(tensorBytes(r.getType(), realBytes_), 1));
          if (std::optional<size_t> dying = overwritable(op, bytes)) {
            Interval &shared = intervals_[*dying];
            shared.end = std::max(shared.end, lastUse(r, &op));
            sharers_.push_back({&op, places.size() - 1, *dying});
            intervalOf_[r] = *dying;
            continue;
          }
          intervalOf_[r] = intervals_.size();
          intervals_.push_back({r, &op, places.size() - 1, begin_[&op], lastUse(r, &op), bytes});
        }
      }
      for (Region &region : op.getRegions())
        if (!isa<FusedOp>(op))
          for (Block &inner : region)
            collect(inner);
    }
  }

  /// The interval of an operand of `op` that `op`'s result of `bytes` may
  /// be written over: one whose last read is `op`, of the same size, where
  /// `op` reads each element before writing it at the same place (an
  /// elementwise loop; cross-entropy's gradient over the logits, which
  /// would otherwise hold two [B, T, V] tensors at once).
  std::optional<size_t> overwritable(Operation &op, int64_t bytes) {
    if (!overwrite_ || !(isa<CrossEntropyGradOp>(op) || (overwriteLoops_ && isa<FusedOp>(op))))
      return std::nullopt;
    ValueRange candidates = op.getOperands();
    if (auto ce = dyn_cast<CrossEntropyGradOp>(op))
      candidates = ce->getOperands().take_front(1); // the logits
    for (Value v : candidates) {
      auto it = intervalOf_.find(v);
      if (it == intervalOf_.end() || intervals_[it->second].bytes != bytes ||
          v.getParentBlock() != op.getBlock() || lastUse(v, v.getDefiningOp()) != begin_[&op])
        continue;
      return it->second;
    }
    return std::nullopt;
  }

  /// The function result an in-place update's result is returned as.
  static int64_t returnIndex(Value v) { return (*v.getUses().begin()).getOperandNumber(); }

  /// The first stacked result of `repeat` that its body yields `v` for: `v`
  /// is written straight into that layer's slice.
  static std::optional<int64_t> stackedSlot(RepeatOp repeat, Value v) {
    if (!repeat || repeat.getAccumulate()) // a sum is added to, not written
      return std::nullopt;
    size_t carries = repeat.getInits().size();
    for (auto [i, yielded] : llvm::enumerate(repeat.getYield().getValues()))
      if (i >= carries && yielded == v)
        return i - carries;
    return std::nullopt;
  }

  /// First fit in definition order over the live ranges (inclusive, so a
  /// result never overlaps an operand of its own op); returns the arena size.
  int64_t assignOffsets() {
    int64_t arenaBytes = 0;
    std::vector<int64_t> offsets;                  // per interval
    std::multimap<int64_t, const Interval *> live; // offset -> interval
    for (const Interval &next : intervals_) {
      for (auto it = live.begin(); it != live.end();)
        it = it->second->end < next.start ? live.erase(it) : std::next(it);
      int64_t offset = 0;
      for (auto &[start, used] : live) {
        if (offset + next.bytes <= start)
          break;
        offset = std::max(offset, start + used->bytes);
      }
      live.emplace(offset, &next);
      places_[next.op][next.result].second = offset;
      offsets.push_back(offset);
      arenaBytes = std::max(arenaBytes, offset + next.bytes);
    }
    for (const Sharer &sharer : sharers_)
      places_[sharer.op][sharer.result].second = offsets[sharer.interval];
    return arenaBytes;
  }

  struct Interval {
    Value value;
    Operation *op;
    size_t result;
    int64_t start, end, bytes;
  };
  /// A result written over an operand: it takes the operand's interval.
  struct Sharer {
    Operation *op;
    size_t result, interval;
  };

  func::FuncOp fn_;
  Liveness liveness_;
  int64_t realBytes_;
  bool overwrite_, overwriteLoops_;
  int64_t arenaBytes_ = 0;
  DenseMap<Operation *, int64_t> begin_, end_;
  DenseMap<Value, size_t> intervalOf_;
  std::vector<Sharer> sharers_;
  llvm::MapVector<Operation *, SmallVector<std::pair<PlaceKind, int64_t>>> places_;
  std::vector<Interval> intervals_;
};

struct PlanBuffers : dtl::impl::PlanBuffersBase<PlanBuffers> {
  using PlanBuffersBase::PlanBuffersBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::optional<Target> planned = symbolizeTarget(target);
    if (!planned) {
      module.emitError("dtl-plan-buffers: target is cpu or cuda, not '") << target << "'";
      return signalPassFailure();
    }
    auto train = module->getAttrOfType<TrainAttr>(attr::train);
    int64_t realBytes = train && train.getPrecision() == Precision::f64 ? 8 : 4;
    for (auto fn : module.getOps<func::FuncOp>()) {
      // Writing results over dying operands shortens live ranges but can
      // leave first fit a worse packing: the smaller arena wins. The CUDA
      // target's fused kernels take __restrict__ pointers, so there only
      // cross-entropy's gradient (a row read whole before it is written).
      Planner separate(fn, realBytes, /*overwrite=*/false, /*overwriteLoops=*/false);
      Planner overwriting(fn, realBytes, /*overwrite=*/true,
                          /*overwriteLoops=*/*planned == Target::cpu);
      if (overwriting.plan() < separate.plan())
        overwriting.write();
      else
        separate.write();
    }
    module->setAttr(attr::target, TargetAttr::get(&getContext(), *planned));
  }
};

} // namespace
