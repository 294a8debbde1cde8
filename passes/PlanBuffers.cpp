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
  Planner(func::FuncOp fn, int64_t realBytes) : fn_(fn), liveness_(fn), realBytes_(realBytes) {}

  void run() {
    int64_t next = 0;
    number(fn_.getBody().front(), next);
    collect(fn_.getBody().front());
    int64_t arenaBytes = assignOffsets();
    MLIRContext *ctx = fn_.getContext();
    for (auto &[op, places] : places_) {
      SmallVector<Attribute> attrs;
      for (auto [kind, index] : places)
        attrs.push_back(PlaceAttr::get(ctx, kind, index));
      op->setAttr(attr::place, ArrayAttr::get(ctx, attrs));
    }
    fn_->setAttr(attr::arenaBytes, IntegerAttr::get(IntegerType::get(ctx, 64), arenaBytes));
  }

private:
  /// Numbers the ops in pre-order; a repeat spans its body.
  void number(Block &block, int64_t &next) {
    for (Operation &op : block) {
      begin_[&op] = next++;
      if (auto repeat = dyn_cast<RepeatOp>(op))
        number(repeat.getBodyBlock(), next);
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
        if (isa<ViewLikeOpInterface>(op) || !isa<RankedTensorType>(r.getType())) {
          places.push_back({PlaceKind::view, 0});
        } else if (op.hasAttr(attr::inPlace)) {
          places.push_back({PlaceKind::result, returnIndex(r)});
        } else if (std::optional<int64_t> slice = stackedSlot(repeat, r)) {
          places.push_back({PlaceKind::slice, *slice});
        } else {
          places.push_back({PlaceKind::arena, 0});
          intervals_.push_back(
              {r, &op, places.size() - 1, begin_[&op], lastUse(r, &op),
               aligned(std::max<int64_t>(tensorBytes(r.getType(), realBytes_), 1))});
        }
      }
      if (auto inner = dyn_cast<RepeatOp>(op))
        collect(inner.getBodyBlock());
    }
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
      arenaBytes = std::max(arenaBytes, offset + next.bytes);
    }
    return arenaBytes;
  }

  struct Interval {
    Value value;
    Operation *op;
    size_t result;
    int64_t start, end, bytes;
  };

  func::FuncOp fn_;
  Liveness liveness_;
  int64_t realBytes_;
  DenseMap<Operation *, int64_t> begin_, end_;
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
    for (auto fn : module.getOps<func::FuncOp>())
      Planner(fn, realBytes).run();
    module->setAttr(attr::target, TargetAttr::get(&getContext(), *planned));
  }
};

} // namespace
