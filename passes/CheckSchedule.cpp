//===- CheckSchedule.cpp - every rank's communication matches its peers' --===//
//
// See Passes.td. Each rank's sequence of communication events is built by
// walking the function as that rank runs it (a repeat's body `count` times,
// the case of an scf.index_switch on its own mesh coordinate), then all
// ranks are run together: a send completes with the matching receive of
// its peer (both blocking, the worst case of MPI and NCCL), a collective
// when every rank of its group is at it. Whatever cannot complete is a
// mismatch or a deadlock, reported at both ranks' ops.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/SCF/IR/SCF.h"

#include <algorithm>
#include <numeric>

namespace dtl {
#define GEN_PASS_DEF_CHECKSCHEDULE
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// One communication as one rank sees it.
struct Event {
  enum class Kind { Send, Recv, Collective } kind;
  Operation *op;
  int64_t peer = -1;          ///< Send, Recv: the other rank
  SmallVector<int64_t> group; ///< Collective: the ranks taking part, in order
};

class Checker {
public:
  Checker(func::FuncOp fn, MeshAttr mesh) : fn_(fn), sizes_(mesh.getSizes()) {}

  LogicalResult run() {
    int64_t ranks = 1;
    for (int64_t s : sizes_)
      ranks *= s;
    events_.resize(ranks);
    for (int64_t r = 0; r < ranks; ++r)
      if (failed(collect(fn_.getBody().front(), r, events_[r])))
        return failure();
    return simulate();
  }

private:
  SmallVector<int64_t> coordsOf(int64_t rank) const {
    SmallVector<int64_t> coords(sizes_.size());
    for (int64_t a = (int64_t)sizes_.size() - 1; a >= 0; --a) {
      coords[a] = rank % sizes_[a];
      rank /= sizes_[a];
    }
    return coords;
  }

  int64_t rankOf(ArrayRef<int64_t> coords) const {
    int64_t rank = 0;
    for (auto [c, s] : llvm::zip(coords, sizes_))
      rank = rank * s + c;
    return rank;
  }

  /// The ranks that differ from `rank` only along `axes`, in group order.
  SmallVector<int64_t> groupOf(int64_t rank, ArrayRef<int16_t> axes) const {
    SmallVector<int64_t> group{rank};
    for (int16_t a : axes) {
      SmallVector<int64_t> next;
      for (int64_t member : group) {
        SmallVector<int64_t> c = coordsOf(member);
        for (int64_t i = 0; i < sizes_[a]; ++i) {
          c[a] = i;
          next.push_back(rankOf(c));
        }
      }
      group = std::move(next);
    }
    llvm::sort(group);
    return group;
  }

  /// The rank at in-group index `index` along `axes` from `rank`.
  FailureOr<int64_t> peerOf(Operation *op, int64_t rank, ArrayRef<int16_t> axes,
                            std::optional<ArrayRef<int64_t>> index) {
    if (!index || index->size() != axes.size() ||
        llvm::any_of(*index, [](int64_t i) { return i == ShapedType::kDynamic; }))
      return op->emitError("the schedule check needs a static peer index, one per grid axis");
    SmallVector<int64_t> coords = coordsOf(rank);
    for (auto [a, i] : llvm::zip(axes, *index)) {
      if (i < 0 || i >= sizes_[a])
        return op->emitError("peer index ") << i << " is outside grid axis " << a;
      coords[a] = i;
    }
    return rankOf(coords);
  }

  /// The events of `block` for `rank`, appended to `out`.
  LogicalResult collect(Block &block, int64_t rank, std::vector<Event> &out) {
    for (Operation &op : block) {
      if (isa<shard::SendOp, shard::RecvOp>(op)) {
        auto send = dyn_cast<shard::SendOp>(op);
        auto recv = dyn_cast<shard::RecvOp>(op);
        FailureOr<int64_t> peer = send
                                      ? peerOf(&op, rank, send.getGridAxes(), send.getDestination())
                                      : peerOf(&op, rank, recv.getGridAxes(), recv.getSource());
        if (failed(peer))
          return failure();
        out.push_back({send ? Event::Kind::Send : Event::Kind::Recv, &op, *peer, {}});
      } else if (isa<shard::AllReduceOp, shard::AllGatherOp, shard::ReduceScatterOp,
                     shard::AllToAllOp>(op)) {
        auto axes = op.getAttrOfType<DenseI16ArrayAttr>("grid_axes");
        SmallVector<int64_t> group = groupOf(rank, axes ? axes.asArrayRef() : ArrayRef<int16_t>());
        if (group.size() > 1)
          out.push_back({Event::Kind::Collective, &op, -1, std::move(group)});
      } else if (auto repeat = dyn_cast<RepeatOp>(op)) {
        for (int64_t i = 0; i < repeat.getCount(); ++i)
          if (failed(collect(repeat.getBodyBlock(), rank, out)))
            return failure();
      } else if (auto choice = dyn_cast<scf::IndexSwitchOp>(op)) {
        auto coordinate = choice.getArg().getDefiningOp<shard::ProcessMultiIndexOp>();
        if (!coordinate || coordinate.getAxes().size() != coordinate.getNumResults())
          return op.emitError("the schedule check needs the switch on a mesh coordinate "
                              "(shard.process_multi_index with its axes)");
        unsigned which = cast<OpResult>(choice.getArg()).getResultNumber();
        int64_t value = coordsOf(rank)[coordinate.getAxes()[which]];
        Region *taken = &choice.getDefaultRegion();
        for (auto [c, region] : llvm::zip(choice.getCases(), choice.getCaseRegions()))
          if (c == value)
            taken = &region;
        if (failed(collect(taken->front(), rank, out)))
          return failure();
      }
    }
    return success();
  }

  std::string describe(int64_t rank) const {
    std::string s = "rank " + std::to_string(rank) + " (";
    SmallVector<int64_t> coords = coordsOf(rank);
    for (auto [a, c] : llvm::enumerate(coords))
      s += (a ? ", " : "") + std::to_string(c);
    return s + ")";
  }

  std::string what(const Event &e) const {
    switch (e.kind) {
    case Event::Kind::Send:
      return "a send to " + describe(e.peer);
    case Event::Kind::Recv:
      return "a receive from " + describe(e.peer);
    case Event::Kind::Collective:
      return "'" + e.op->getName().getStringRef().str() + "'";
    }
    llvm_unreachable("event kinds are covered");
  }

  /// An error at `a`'s op with a note at `b`'s (or that `b` has finished).
  LogicalResult mismatch(int64_t a, const Event &at, int64_t b, const Event *other, StringRef why) {
    InFlightDiagnostic d = at.op->emitError()
                           << describe(a) << " waits at " << what(at) << ", but " << describe(b)
                           << (other ? " is at " + what(*other) : std::string(" has finished"))
                           << ": " << why;
    if (other)
      d.attachNote(other->op->getLoc()) << describe(b) << "'s " << what(*other);
    return failure();
  }

  LogicalResult simulate() {
    size_t ranks = events_.size();
    std::vector<size_t> next(ranks, 0);
    auto current = [&](int64_t r) -> const Event * {
      return next[r] < events_[r].size() ? &events_[r][next[r]] : nullptr;
    };
    for (bool progress = true; progress;) {
      progress = false;
      for (size_t r = 0; r < ranks; ++r) {
        const Event *e = current(r);
        if (!e)
          continue;
        if (e->kind == Event::Kind::Send) {
          const Event *other = current(e->peer);
          if (!other || other->kind != Event::Kind::Recv || other->peer != int64_t(r))
            continue;
          if (e->op->getAttr("grid_axes") != other->op->getAttr("grid_axes"))
            return mismatch(r, *e, e->peer, other, "their grid axes (communicators) differ");
          if (e->op->getOperand(0).getType() != other->op->getResult(0).getType())
            return mismatch(r, *e, e->peer, other, "the tensors' types differ");
          ++next[r];
          ++next[e->peer];
          progress = true;
        } else if (e->kind == Event::Kind::Collective) {
          bool allThere = true;
          for (int64_t member : e->group) {
            const Event *other = current(member);
            if (!other || other->kind != Event::Kind::Collective || other->group != e->group) {
              allThere = false;
              break;
            }
            if (other->op->getName() != e->op->getName() ||
                other->op->getAttrDictionary() != e->op->getAttrDictionary() ||
                other->op->getResultTypes() != e->op->getResultTypes())
              return mismatch(r, *e, member, other,
                              "a collective must be the same on every rank "
                              "of its group");
          }
          if (!allThere)
            continue;
          for (int64_t member : e->group)
            ++next[member];
          progress = true;
        }
      }
    }
    // Stuck. Ranks waiting on a transfer wait for its peer: following that
    // from each rank in turn finds a cycle if there is one, and the report
    // is at a rank in it (not at a rank merely waiting on the cycle).
    auto peerWaitedFor = [&](int64_t r) -> int64_t {
      const Event *e = current(r);
      return e && e->kind != Event::Kind::Collective ? e->peer : -1;
    };
    std::vector<size_t> order(ranks);
    std::iota(order.begin(), order.end(), 0);
    std::string cycle; // "1 -> 2 -> 0 -> 1" when longer than a pair
    for (size_t start = 0; start < ranks; ++start) {
      llvm::SmallDenseSet<int64_t> seen;
      int64_t r = int64_t(start);
      while (r >= 0 && seen.insert(r).second)
        r = peerWaitedFor(r);
      if (r >= 0) {
        std::rotate(order.begin(), order.begin() + r, order.end());
        cycle = std::to_string(r);
        for (int64_t q = peerWaitedFor(r); q != r; q = peerWaitedFor(q))
          cycle += " -> " + std::to_string(q);
        cycle += " -> " + std::to_string(r);
        break;
      }
    }
    for (size_t r : order) {
      const Event *e = current(r);
      if (!e)
        continue;
      if (e->kind == Event::Kind::Collective) {
        for (int64_t member : e->group)
          if (const Event *other = current(member);
              !other || other->kind != Event::Kind::Collective || other->group != e->group)
            return mismatch(r, *e, member, other, "it never reaches this collective");
        continue;
      }
      const Event *other = current(e->peer);
      if (!other)
        return mismatch(r, *e, e->peer, nullptr, "nothing matches it");
      bool pair = other->kind != Event::Kind::Collective && other->peer == int64_t(r);
      if (pair)
        return mismatch(r, *e, e->peer, other, "each waits for the other (a deadlock)");
      if (!cycle.empty())
        return mismatch(r, *e, e->peer, other,
                        "ranks " + cycle + " each wait for the next (a deadlock)");
      return mismatch(r, *e, e->peer, other, "the order of their operations does not match");
    }
    return success();
  }

  func::FuncOp fn_;
  ArrayRef<int64_t> sizes_;
  std::vector<std::vector<Event>> events_;
};

struct CheckSchedule : dtl::impl::CheckScheduleBase<CheckSchedule> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MeshAttr mesh = getMesh(module);
    if (!mesh)
      return;
    for (auto fn : module.getOps<func::FuncOp>()) {
      // Without stage code or point-to-point transfers every rank runs the
      // same collectives in the same order: nothing to check.
      bool diverges = false;
      fn.walk([&](Operation *op) {
        diverges |= isa<scf::IndexSwitchOp, shard::SendOp, shard::RecvOp>(op);
      });
      if (diverges && failed(Checker(fn, mesh).run()))
        return signalPassFailure();
    }
  }
};

} // namespace
