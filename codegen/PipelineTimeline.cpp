//===- PipelineTimeline.cpp - a pipeline's stages run together, predicted -===//

#include "codegen/PipelineTimeline.h"

#include "dialects/dtl/DtlOps.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

using namespace mlir;
using namespace dtl;

Operation *dtl::pipelineSwitch(func::FuncOp step) {
  for (auto choice : step.getBody().front().getOps<scf::IndexSwitchOp>())
    if (choice.getArg().getDefiningOp<shard::ProcessMultiIndexOp>())
      return choice;
  return nullptr;
}

namespace {

/// What a stage does, in order: computations (a micro-batch's forward or
/// backward with the ops around it) and transfers.
struct Event {
  bool transfer = false, send = false;
  int64_t peer = -1, bytes = 0;
  double seconds = 0;
  std::string what;
};

} // namespace

std::optional<PipelineTimeline>
dtl::simulatePipeline(func::FuncOp step, MeshAttr mesh,
                      llvm::function_ref<double(Operation *)> opSeconds,
                      llvm::function_ref<double(int64_t)> transferSeconds,
                      llvm::function_ref<double(Operation *)> opFlops, int64_t realBytes) {
  auto choice = dyn_cast_or_null<scf::IndexSwitchOp>(pipelineSwitch(step));
  if (!choice)
    return std::nullopt;
  auto coordinate = choice.getArg().getDefiningOp<shard::ProcessMultiIndexOp>();
  PipelineTimeline t;
  t.axis = coordinate.getAxes()[0];
  t.stages = mesh.span({t.axis});
  for (std::vector<double> *v : {&t.busySeconds, &t.transferSeconds, &t.flops})
    v->assign(t.stages, 0);
  for (std::vector<int64_t> *v : {&t.chunkLayers, &t.maxInFlight, &t.savedBytes})
    v->assign(t.stages, 0);
  t.chunkFirstLayers.assign(t.stages, {});

  std::vector<std::vector<Event>> events(t.stages);
  for (int64_t s = 0; s < t.stages; ++s) {
    Region &region = s < t.stages - 1 ? choice.getCaseRegions()[s] : choice.getDefaultRegion();
    std::vector<Event> &out = events[s];
    // What runs after a micro-batch's layers and before the next transfer
    // or layers (its sums, the embedding's gradient) is part of its work;
    // what runs after a transfer (the embedding), part of the next layers'.
    Event pending;
    auto attachToLast = [&] {
      if (!out.empty() && !out.back().transfer)
        out.back().seconds += std::exchange(pending.seconds, 0);
    };
    auto flush = [&] {
      attachToLast();
      if (pending.seconds > 0)
        out.push_back(pending);
      pending = Event();
    };
    int64_t inFlight = 0;
    for (Operation &op : region.front().without_terminator()) {
      if (isa<shard::SendOp, shard::RecvOp>(op)) {
        flush();
        auto send = dyn_cast<shard::SendOp>(op);
        auto recv = dyn_cast<shard::RecvOp>(op);
        Event e;
        e.transfer = true;
        e.send = bool(send);
        e.peer = send ? send.getDestination().front() : recv.getSource()->front();
        e.bytes = tensorBytes(op.getResult(0).getType(), realBytes);
        e.what = (send ? "send to " : "receive from ") + std::to_string(e.peer);
        out.push_back(e);
        continue;
      }
      double seconds = opSeconds(&op);
      t.flops[s] += opFlops(&op);
      auto repeat = dyn_cast<RepeatOp>(op);
      auto micro = repeat ? repeat->getAttrOfType<IntegerAttr>(attr::microBatch) : IntegerAttr();
      if (!micro) {
        pending.seconds += seconds;
        continue;
      }
      attachToLast();
      pending.seconds += seconds;
      bool forward = !repeat.getReverse();
      auto chunkAttr = repeat->getAttrOfType<IntegerAttr>(attr::virtualStage);
      int64_t chunk = chunkAttr ? chunkAttr.getInt() : 0;
      pending.what = (forward ? "F" : "B") + std::to_string(micro.getInt()) +
                     (chunkAttr ? "." + std::to_string(chunk) : "");
      t.microBatches = std::max(t.microBatches, micro.getInt() + 1);
      t.virtualStages = std::max(t.virtualStages, chunk + 1);
      inFlight += forward ? 1 : -1;
      t.maxInFlight[s] = std::max(t.maxInFlight[s], inFlight);
      if (forward && micro.getInt() == 0) {
        t.chunkLayers[s] = repeat.getCount();
        auto first = repeat->getAttrOfType<IntegerAttr>(attr::firstLayer);
        t.chunkFirstLayers[s].push_back(first ? first.getInt() : 0);
        if (chunk == 0)
          for (Value saved : repeat.getStackedResults())
            t.savedBytes[s] += tensorBytes(saved.getType(), realBytes);
      }
      out.push_back(std::exchange(pending, Event()));
    }
    flush();
  }

  // All stages together: computation takes its time, a transfer starts when
  // both ends are at it.
  std::vector<size_t> next(t.stages, 0);
  std::vector<double> clock(t.stages, 0);
  bool progress = true;
  while (progress) {
    progress = false;
    for (int64_t s = 0; s < t.stages; ++s)
      while (next[s] < events[s].size() && !events[s][next[s]].transfer) {
        const Event &e = events[s][next[s]++];
        t.spans.push_back(
            {s, e.what.empty() ? "other" : e.what, false, clock[s], clock[s] + e.seconds});
        clock[s] += e.seconds;
        t.busySeconds[s] += e.seconds;
        progress = true;
      }
    for (int64_t s = 0; s < t.stages; ++s) {
      if (next[s] >= events[s].size())
        continue;
      const Event &e = events[s][next[s]];
      int64_t q = e.peer;
      if (q < 0 || q >= t.stages || next[q] >= events[q].size())
        continue;
      const Event &other = events[q][next[q]];
      if (!other.transfer || other.peer != s || other.send == e.send)
        continue;
      double start = std::max(clock[s], clock[q]);
      double seconds = transferSeconds(e.bytes);
      for (auto [stage, event] : {std::pair{s, &e}, {q, &other}}) {
        t.spans.push_back({stage, event->what, true, start, start + seconds});
        t.transferSeconds[stage] += seconds;
        clock[stage] = start + seconds;
        ++next[stage];
      }
      progress = true;
    }
  }
  for (double c : clock)
    t.seconds = std::max(t.seconds, c);
  return t;
}
