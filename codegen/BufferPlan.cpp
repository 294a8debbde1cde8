//===- BufferPlan.cpp - liveness-based reuse of intermediate buffers ------===//

#include "codegen/BufferPlan.h"
#include "dialects/dtl/DtlOps.h"

#include "mlir/IR/BuiltinTypes.h"

#include <map>

using namespace mlir;

namespace {
/// Buffers start on cache-line (and AVX-512 vector) boundaries.
constexpr int64_t kAlignment = 64;

int64_t aligned(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }
} // namespace

int64_t dtl::bufferBytes(Value v, int64_t realBytes) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t element = type.getElementType().isInteger(32) ? 4 : realBytes;
  return type.getNumElements() * element;
}

bool dtl::isView(Operation *op) { return isa<ReshapeOp, LayerOp>(op); }

DenseMap<Value, unsigned> dtl::inPlaceResults(func::FuncOp fn) {
  Block &body = fn.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  DenseMap<Operation *, int64_t> position;
  int64_t index = 0;
  for (Operation &op : body)
    position[&op] = index++;
  DenseMap<Value, unsigned> out;
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Operation *update = v.getDefiningOp();
    if (!isa_and_nonnull<AdamwUpdateOp, SgdUpdateOp>(update))
      continue;
    // In place: the update reads each element before writing it, and nothing
    // after it reads the old param or state.
    SmallVector<Value> state;
    if (auto adamw = dyn_cast<AdamwUpdateOp>(update))
      state = {adamw.getParam(), adamw.getM(), adamw.getV()};
    else
      state = {cast<SgdUpdateOp>(update).getParam(), cast<SgdUpdateOp>(update).getMomentumBuf()};
    bool lastReader = llvm::all_of(state, [&](Value arg) {
      return isa<BlockArgument>(arg) && llvm::all_of(arg.getUsers(), [&](Operation *user) {
               return position[user] <= position[update];
             });
    });
    if (lastReader && v.hasOneUse())
      out[v] = i;
  }
  return out;
}

dtl::BufferPlan dtl::planBuffers(func::FuncOp fn, int64_t realBytes, const Schedule &schedule) {
  Block &body = fn.getBody().front();
  DenseMap<Operation *, int64_t> position;
  int64_t index = 0;
  for (Operation &op : body)
    position[&op] = index++;
  // When an op really runs: a fused op, with the op whose kernel computes it.
  auto runsAt = [&](Operation *op) {
    for (auto it = schedule.fusedInto.find(op); it != schedule.fusedInto.end();
         it = schedule.fusedInto.find(op))
      op = it->second;
    return position[op];
  };

  struct Interval {
    Value value;
    int64_t start, end, bytes;
  };
  // A view's uses keep its source (a buffer, or an argument) alive.
  DenseMap<Value, Value> sourceOf;
  auto source = [&](Value v) { return sourceOf.lookup(v) ? sourceOf.lookup(v) : v; };
  SmallVector<Interval> intervals;
  DenseMap<Value, size_t> intervalOf;
  DenseMap<Value, unsigned> inPlace = inPlaceResults(fn);
  for (Operation &op : body.without_terminator()) {
    if (isView(&op)) {
      sourceOf[op.getResult(0)] = source(op.getOperand(0));
      continue;
    }
    if (schedule.fusedInto.count(&op))
      continue;
    for (Value r : op.getResults()) {
      if (inPlace.count(r))
        continue;
      intervalOf[r] = intervals.size();
      intervals.push_back({r, position[&op], position[&op],
                           aligned(std::max<int64_t>(bufferBytes(r, realBytes), 1))});
    }
  }
  for (Operation &op : body)
    for (Value operand : op.getOperands()) {
      auto it = intervalOf.find(source(operand));
      if (it != intervalOf.end())
        intervals[it->second].end = std::max(intervals[it->second].end, runsAt(&op));
    }
  for (auto [value, until] : schedule.readUntil) {
    auto it = intervalOf.find(source(value));
    if (it != intervalOf.end())
      intervals[it->second].end = std::max(intervals[it->second].end, position[until]);
  }

  // First fit in definition order over the live blocks, kept by offset.
  BufferPlan plan;
  std::multimap<int64_t, const Interval *> live; // offset -> interval
  for (const Interval &next : intervals) {
    for (auto it = live.begin(); it != live.end();)
      it = it->second->end < next.start ? live.erase(it) : std::next(it);
    int64_t offset = 0;
    for (auto &[start, used] : live) {
      if (offset + next.bytes <= start)
        break;
      offset = std::max(offset, start + used->bytes);
    }
    live.emplace(offset, &next);
    plan.offsets[next.value] = offset;
    plan.arenaBytes = std::max(plan.arenaBytes, offset + next.bytes);
  }
  return plan;
}
