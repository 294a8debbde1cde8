//===- Explain.cpp - dtlc --explain: shardings, collectives, memory, time -===//
//
// Everything here is read off train_step at the execution stage, planned
// for the target being explained (with the layouts the partitioner
// annotated): nothing runs and nothing is planned again. Memory is what the
// generated program allocates: the state (arguments), the step's result
// buffers and the arena the buffer plan sized (`dtl.arena_bytes`); `./model
// --memory` prints the same categories as allocated, and how much its
// heap grew. Compute is each op's cost (CostOpInterface), a
// repeat's body counted once per layer.
//
//===----------------------------------------------------------------------===//

#include "codegen/Explain.h"
#include "codegen/PipelineTimeline.h"
#include "codegen/Printer.h"
#include "dialects/dtl/Layout.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mlir;
using namespace dtl;
namespace json = llvm::json;

namespace {

std::string typeString(Type t) { return formatType(t); }

/// How many times `op` runs per step: the counts of the repeats around it.
int64_t timesRun(Operation *op) {
  int64_t times = 1;
  for (Operation *parent = op->getParentOp(); parent; parent = parent->getParentOp())
    if (auto repeat = dyn_cast<RepeatOp>(parent))
      times *= repeat.getCount();
  return times;
}

/// The op of `fn`'s body that `op` is in (itself at the top level).
Operation *topLevel(Operation *op, func::FuncOp fn) {
  return fn.getBody().front().findAncestorOpInBlock(*op);
}

std::string timeString(double seconds) {
  if (seconds >= 1e-3)
    return llvm::formatv("{0:f2} ms", seconds * 1e3).str();
  return llvm::formatv("{0:f1} us", seconds * 1e6).str();
}

class Explainer {
public:
  Explainer(ModuleOp module, const ExplainOptions &options)
      : module_(module), options_(options), mesh_(getMesh(module)) {}

  LogicalResult run(raw_ostream &os) {
    step_ = module_.lookupSymbol<func::FuncOp>("train_step");
    auto model = module_->getAttrOfType<FlatSymbolRefAttr>(attr::model);
    if (!mesh_ || !step_ || !model || !step_->hasAttr(attr::arenaBytes))
      return module_.emitError("--explain needs a train_step at the execution stage (planned)");
    auto train = module_->getAttrOfType<TrainAttr>(attr::train);
    realBytes_ = train && train.getPrecision() == Precision::f64 ? 8 : 4;
    for (StringAttr a : mesh_.getNames())
      axisNames_.push_back(a.getValue().str());
    classifyPhases();
    stages_ = pipelineSwitch(step_);
    if (stages_)
      timeline_ = simulatePipeline(
          step_, mesh_, [&](Operation *op) { return opSeconds(op); },
          [&](int64_t bytes) {
            LinkModel link = linkOfAxis(timelineAxis());
            return link.alphaSeconds + double(bytes) / link.bytesPerSecond;
          },
          [&](Operation *op) { return opFlops(op); }, realBytes_);
    if (options_.trace) {
      os << llvm::formatv("{0:2}", json::Value(traceJson())) << "\n";
      return success();
    }
    auto target = module_->getAttrOfType<TargetAttr>(attr::target);
    json::Object report{{"source", options_.sourceFile},
                        {"model", model.getValue().str()},
                        {"target", target ? stringifyTarget(target.getValue()).str() : ""},
                        {"mesh", meshJson()},
                        {"ranks", meshSize()},
                        {"links", linksJson()},
                        {"tensors", tensorsJson()},
                        {"weight_decay", weightDecayJson()},
                        {"activations", activationsJson()},
                        {"collectives", collectivesJson()},
                        {"memory", memoryJson()}};
    if (timeline_)
      report["pipeline"] = pipelineJson();
    report["step_time"] = stepTimeJson();
    if (options_.json)
      os << llvm::formatv("{0:2}", json::Value(std::move(report))) << "\n";
    else
      printText(report, os);
    return success();
  }

private:
  int64_t meshSize() const {
    int64_t n = 1;
    for (int64_t s : mesh_.getSizes())
      n *= s;
    return n;
  }

  std::string axesString(ArrayRef<int16_t> axes) const {
    std::string s;
    for (auto [i, a] : llvm::enumerate(axes))
      s += (i ? ", " : "") + axisNames_[a];
    return axes.size() > 1 ? "(" + s + ")" : s;
  }

  /// A layout as the user writes it; axes of one device split nothing and
  /// are left out.
  std::string layoutString(const Layout &given) const {
    Layout layout = withoutTrivialAxes(mesh_, given);
    std::string s = "[";
    for (auto [i, axes] : llvm::enumerate(layout.dims))
      s += (i ? ", " : "") + (axes.empty() ? std::string("_") : axesString(axes));
    s += "]";
    if (!layout.partial.empty())
      s += " partial " + axesString(layout.partial);
    return s;
  }

  /// The layout the partitioner gave `v` (annotated on its op), or the
  /// argument's.
  Layout layoutOf(Value v) const {
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (auto repeat = dyn_cast<RepeatOp>(arg.getOwner()->getParentOp()))
        if (auto layouts = repeat->getAttrOfType<ArrayAttr>(attr::argShardings))
          return Layout::fromAttr(cast<ShardingAttr>(layouts[arg.getArgNumber()]));
      return arg.getOwner()->getParentOp() == step_ ? argLayout(step_, arg.getArgNumber())
                                                    : Layout::replicated(0);
    }
    Operation *op = v.getDefiningOp();
    auto layouts = op->getAttrOfType<ArrayAttr>(attr::shardings);
    // A wait is a view of the collective it waits for.
    if (!layouts)
      if (auto view = dyn_cast<ViewLikeOpInterface>(op))
        return layoutOf(view.getViewSource());
    if (!layouts)
      return Layout::replicated(cast<RankedTensorType>(v.getType()).getRank());
    return Layout::fromAttr(cast<ShardingAttr>(layouts[cast<OpResult>(v).getResultNumber()]));
  }

  /// The link model of a group spanning `axes`: its slowest axis.
  LinkModel linkFor(ArrayRef<int16_t> axes) const {
    LinkModel worst{0, 1e30, ""};
    for (int16_t a : axes) {
      LinkModel m = linkOfAxis(a);
      if (m.bytesPerSecond < worst.bytesPerSecond)
        worst = m;
    }
    return worst;
  }

  LinkModel linkOfAxis(int16_t axis) const {
    auto it = options_.links.find(axisNames_[axis]);
    if (it != options_.links.end())
      return it->second;
    // Ranks are row-major: a group along `axis` spans stride * size ranks.
    int64_t stride = 1;
    for (size_t a = axis + 1; a < mesh_.getSizes().size(); ++a)
      stride *= mesh_.getSizes()[a];
    if (stride * mesh_.getSizes()[axis] <= options_.ranksPerNode)
      return {5e-6, 450e9, "H100 NVLink (group within a node)"};
    return {15e-6, 45e9, "InfiniBand NDR 400G (group across nodes)"};
  }

  /// Forward: what the loss depends on; backward: what the gradients fed to
  /// the optimizer depend on, beyond that; the rest is the optimizer.
  void classifyPhases() {
    auto sliceOf = [](Value root, llvm::DenseSet<Operation *> &into) {
      SmallVector<Value> work{root};
      while (!work.empty()) {
        Operation *op = work.pop_back_val().getDefiningOp();
        if (!op || !into.insert(op).second)
          continue;
        work.append(op->operand_begin(), op->operand_end());
      }
    };
    auto ret = cast<func::ReturnOp>(step_.getBody().front().getTerminator());
    sliceOf(ret.getOperand(0), forward_);
    step_.walk([&](Operation *op) {
      if (isa<AdamwUpdateOp, SgdUpdateOp>(op))
        sliceOf(op->getOperand(1), backward_);
    });
  }

  /// The phase of `op`'s top-level op (a repeat's body is its phase).
  int64_t bytes(Type t) const { return tensorBytes(t, realBytes_); }

  /// Whether dtl-partition inserted the collective at `loc` for a sharding
  /// constraint.
  static bool forConstraint(Location loc) {
    auto named = dyn_cast<NameLoc>(loc);
    return named && named.getName() == constraintReshard;
  }

  std::string phaseOf(Operation *op) const {
    op = topLevel(op, step_);
    if (forward_.contains(op))
      return "forward";
    if (backward_.contains(op))
      return "backward";
    return "optimizer";
  }

  json::Array meshJson() const {
    json::Array axes;
    for (auto [name, size] : llvm::zip(axisNames_, mesh_.getSizes()))
      axes.push_back(json::Object{{"axis", name}, {"size", size}});
    return axes;
  }

  json::Array linksJson() const {
    json::Array links;
    for (size_t a = 0; a < axisNames_.size(); ++a) {
      LinkModel m = linkOfAxis(a);
      links.push_back(json::Object{{"axis", axisNames_[a]},
                                   {"alpha_us", m.alphaSeconds * 1e6},
                                   {"beta_gb_per_s", m.bytesPerSecond / 1e9},
                                   {"model", m.what}});
    }
    return links;
  }

  /// `interleaved`: the blocks a param (or its gradient or state) is stored
  /// in for a split (dtl-interleave-splits), 0 when stored in order.
  json::Object tensorJson(StringRef role, StringRef name, Type global, const Layout &layout,
                          Type local, int64_t interleaved) const {
    return json::Object{{"role", role},
                        {"name", name},
                        {"global", typeString(global)},
                        {"sharding", layoutString(layout)},
                        {"interleaved_blocks", interleaved},
                        {"local", typeString(local)},
                        {"bytes", bytes(local)}};
  }

  int64_t interleavedBlocks(unsigned arg) const {
    auto order = step_.getArgAttrOfType<DenseI64ArrayAttr>(arg, attr::interleave);
    return order ? order[1] : 0;
  }

  /// The step's argument an optimizer update updates (its param operand,
  /// back through the collectives that gather or slice it).
  static unsigned updatedParam(Operation *update) {
    Value param = update->getOperand(0);
    while (param.getDefiningOp())
      param = param.getDefiningOp()->getOperand(0);
    return cast<BlockArgument>(param).getArgNumber();
  }

  /// Params, their gradients (as the optimizer gets them), optimizer state
  /// and inputs.
  json::Array tensorsJson() {
    json::Array tensors;
    auto nameOf = [&](unsigned i) { return argName(step_, i); };
    for (Role role : {Role::param, Role::grad, Role::opt_state, Role::input}) {
      if (role == Role::grad) {
        step_.walk([&](Operation *op) {
          if (!isa<AdamwUpdateOp, SgdUpdateOp>(op))
            return;
          Value grad = op->getOperand(1);
          unsigned arg = updatedParam(op);
          auto global = step_.getArgAttrOfType<TypeAttr>(arg, attr::globalType);
          gradBytes_ += bytes(grad.getType());
          tensors.push_back(tensorJson("grad", nameOf(arg), global.getValue(), layoutOf(grad),
                                       grad.getType(), interleavedBlocks(arg)));
        });
        continue;
      }
      for (BlockArgument arg : step_.getArguments()) {
        if (argRole(step_, arg.getArgNumber()) != role)
          continue;
        auto global = step_.getArgAttrOfType<TypeAttr>(arg.getArgNumber(), attr::globalType);
        tensors.push_back(tensorJson(stringifyRole(role), nameOf(arg.getArgNumber()),
                                     global.getValue(), layoutOf(arg), arg.getType(),
                                     interleavedBlocks(arg.getArgNumber())));
      }
    }
    return tensors;
  }

  /// Which params the optimizer's updates decay, as the IR says.
  json::Object weightDecayJson() const {
    auto optimizer = module_->getAttrOfType<OptimizerAttr>(attr::optimizer);
    json::Array decays, exempt;
    step_.walk([&](Operation *op) {
      FloatAttr rate;
      if (auto adamw = dyn_cast<AdamwUpdateOp>(op))
        rate = adamw.getWeightDecayAttr();
      else if (auto sgd = dyn_cast<SgdUpdateOp>(op))
        rate = sgd.getWeightDecayAttr();
      else
        return;
      (rate.getValueAsDouble() != 0 ? decays : exempt).push_back(argName(step_, updatedParam(op)));
    });
    return json::Object{{"rate", optimizer ? double(optimizer.getWeightDecay()) : 0.0},
                        {"decays", std::move(decays)},
                        {"exempt", std::move(exempt)}};
  }

  /// The largest values of the forward pass.
  json::Array activationsJson() const {
    SmallVector<Value> values;
    for (Operation &op : step_.getBody().front())
      if (forward_.contains(&op) && !isa<shard::AllSliceOp, ReshapeOp, CollectiveWaitOp>(op))
        values.append(op.result_begin(), op.result_end());
    llvm::stable_sort(values,
                      [&](Value a, Value b) { return bytes(a.getType()) > bytes(b.getType()); });
    json::Array out;
    for (Value v : ArrayRef<Value>(values).take_front(8))
      out.push_back(json::Object{{"op", v.getDefiningOp()->getName().getStringRef()},
                                 {"local", typeString(v.getType())},
                                 {"sharding", layoutString(layoutOf(v))},
                                 {"bytes", bytes(v.getType())},
                                 {"source", sourcePosition(v.getLoc())}});
    return out;
  }

  /// Ring algorithms: an all-reduce of S bytes over n ranks sends
  /// 2 (n-1)/n S per rank in 2 (n-1) steps; an all-gather (S gathered) or a
  /// reduce-scatter (S scattered) sends (n-1)/n S in n-1 steps.
  /// A collective's kind, axes, the bytes each rank sends and its time on
  /// the link model; the kind is empty for other ops.
  struct CollectiveCost {
    StringRef kind;
    ArrayRef<int16_t> axes;
    int64_t ranks = 1;
    double sent = 0, seconds = 0;
  };
  CollectiveCost collectiveCost(Operation *op) const {
    ArrayRef<int16_t> axes;
    int64_t full = 0;
    double factor = 0;
    StringRef kind;
    if (auto r = dyn_cast<shard::AllReduceOp>(op)) {
      kind = "all_reduce", axes = r.getGridAxes(), full = bytes(r.getInput().getType()), factor = 2;
    } else if (auto g = dyn_cast<shard::AllGatherOp>(op)) {
      kind = "all_gather", axes = g.getGridAxes(), full = bytes(g.getResult().getType()),
      factor = 1;
    } else if (auto s = dyn_cast<shard::ReduceScatterOp>(op)) {
      kind = "reduce_scatter", axes = s.getGridAxes(), full = bytes(s.getInput().getType()),
      factor = 1;
    } else if (auto a = dyn_cast<shard::AllToAllOp>(op)) {
      // Each rank keeps 1/n of its tensor and sends the rest, in n-1 steps.
      kind = "all_to_all", axes = a.getGridAxes(), full = bytes(a.getInput().getType()), factor = 1;
    } else if (auto s = dyn_cast<shard::AllSliceOp>(op)) {
      kind = "all_slice", axes = s.getGridAxes(), full = bytes(s.getInput().getType());
    } else {
      return {};
    }
    int64_t n = 1;
    for (int16_t a : axes)
      n *= mesh_.getSizes()[a];
    double sent = n > 1 ? factor * double(n - 1) / n * full : 0;
    LinkModel link = linkFor(axes);
    double seconds =
        sent > 0 ? factor * (n - 1) * link.alphaSeconds + sent / link.bytesPerSecond : 0;
    return {kind, axes, n, sent, seconds};
  }

  int16_t timelineAxis() const {
    auto choice = cast<scf::IndexSwitchOp>(stages_);
    return choice.getArg().getDefiningOp<shard::ProcessMultiIndexOp>().getAxes()[0];
  }

  double opFlops(Operation *op) const {
    auto costed = dyn_cast<CostOpInterface>(op);
    return costed ? costed.getCost(realBytes_).flops() : 0;
  }

  /// An op's predicted time: its FLOPs at the sustained rate, and the
  /// collectives in it (a tensor-parallel all-reduce per layer).
  double opSeconds(Operation *op) const {
    double seconds = opFlops(op) / (options_.teraflops * 1e12);
    int64_t outer = timesRun(op);
    op->walk([&](Operation *inner) {
      CollectiveCost c = collectiveCost(inner);
      seconds += c.seconds * double(timesRun(inner) / outer);
    });
    return seconds;
  }

  /// The stages run together: what each holds and does, the timeline and
  /// its idle share (the bubble), against the formula.
  json::Object pipelineJson() const {
    const PipelineTimeline &t = *timeline_;
    auto train = module_->getAttrOfType<TrainAttr>(attr::train);
    PipelineSchedule schedule = train ? train.getPipeline() : PipelineSchedule::one_f_one_b;
    json::Array stages;
    double busy = 0;
    for (int64_t s = 0; s < t.stages; ++s) {
      busy += t.busySeconds[s];
      json::Array chunks;
      for (int64_t first : t.chunkFirstLayers[s])
        chunks.push_back(json::Array{first, first + t.chunkLayers[s] - 1});
      stages.push_back(json::Object{{"stage", s},
                                    {"layer_ranges", std::move(chunks)},
                                    {"flops", t.flops[s]},
                                    {"compute_seconds", t.busySeconds[s]},
                                    {"transfer_seconds", t.transferSeconds[s]},
                                    {"idle_fraction", 1 - t.busySeconds[s] / t.seconds},
                                    {"max_forwards_in_flight", t.maxInFlight[s]},
                                    {"saved_bytes_per_forward", t.savedBytes[s]},
                                    {"saved_bytes_at_peak", t.maxInFlight[s] * t.savedBytes[s]}});
    }
    json::Array spans;
    for (const TimelineSpan &span : t.spans)
      spans.push_back(json::Object{{"stage", span.stage},
                                   {"what", span.what},
                                   {"transfer", span.transfer},
                                   {"start_seconds", span.start},
                                   {"end_seconds", span.end}});
    double p = double(t.stages), m = double(t.microBatches), v = double(t.virtualStages);
    std::string name = stringifyPipelineSchedule(schedule).str();
    if (schedule == PipelineSchedule::interleaved)
      name += "(" + std::to_string(t.virtualStages) + ")";
    return json::Object{{"axis", axisNames_[t.axis]},
                        {"stages", t.stages},
                        {"micro_batches", t.microBatches},
                        {"virtual_stages", t.virtualStages},
                        {"schedule", name},
                        {"seconds", t.seconds},
                        {"bubble_fraction", 1 - busy / (p * t.seconds)},
                        // The bubble's p - 1 forwards and backwards are of a
                        // chunk, 1/V of a stage's layers.
                        {"bubble_formula", (p - 1) / (v * m + p - 1)},
                        {"per_stage", std::move(stages)},
                        {"timeline", std::move(spans)}};
  }

  /// Chrome's trace event format (Perfetto, chrome://tracing): one row per
  /// pipeline stage, or one span per step without a pipeline.
  json::Object traceJson() const {
    json::Array events;
    auto span = [&](StringRef name, StringRef category, int64_t row, double start, double end) {
      events.push_back(json::Object{{"name", name},
                                    {"cat", category},
                                    {"ph", "X"},
                                    {"pid", 0},
                                    {"tid", row},
                                    {"ts", start * 1e6},
                                    {"dur", (end - start) * 1e6}});
    };
    if (timeline_) {
      for (int64_t s = 0; s < timeline_->stages; ++s)
        events.push_back(json::Object{
            {"name", "thread_name"},
            {"ph", "M"},
            {"pid", 0},
            {"tid", s},
            {"args",
             json::Object{{"name", axisNames_[timeline_->axis] + " stage " + std::to_string(s)}}}});
      for (const TimelineSpan &s : timeline_->spans)
        span(s.what, s.transfer ? "transfer" : "compute", s.stage, s.start, s.end);
    } else {
      double flops = 0;
      for (Operation &op : step_.getBody().front())
        flops += opFlops(&op);
      span("train_step", "compute", 0, 0, flops / (options_.teraflops * 1e12));
    }
    return json::Object{{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
  }

  /// The collectives outside a pipeline's stages (see pipelineJson for those).
  json::Array collectivesJson() {
    json::Array out;
    step_.walk([&](Operation *op) {
      CollectiveCost c = collectiveCost(op);
      if (c.kind.empty() || (stages_ && stages_->isAncestor(op)))
        return;
      // Inside a repeat, once per layer.
      int64_t times = timesRun(op);
      commSeconds_ += c.seconds * times;
      commBytes_ += c.sent * times;
      out.push_back(json::Object{{"kind", c.kind},
                                 {"axes", axesString(c.axes)},
                                 {"ranks", c.ranks},
                                 {"times", times},
                                 {"tensor", typeString(op->getOperand(0).getType())},
                                 {"result", typeString(op->getResult(0).getType())},
                                 {"bytes_sent_per_rank", (int64_t)c.sent},
                                 {"seconds", c.seconds},
                                 {"phase", phaseOf(op)},
                                 {"source", sourcePosition(op->getLoc())},
                                 {"for_constraint", forConstraint(op->getLoc())}});
    });
    return out;
  }

  /// What the generated program allocates per rank, by category.
  json::Object memoryJson() {
    std::map<Role, int64_t> byRole;
    for (BlockArgument arg : step_.getArguments())
      byRole[argRole(step_, arg.getArgNumber()).value_or(Role::input)] += bytes(arg.getType());
    int64_t results = 0;
    // New params and state are written over the old (dtl-mark-in-place).
    for (unsigned i = 0; i < step_.getNumResults(); ++i)
      if (resultRole(step_, i) != Role::param && resultRole(step_, i) != Role::opt_state)
        results += bytes(step_.getResultTypes()[i]);
    // The intermediates share one arena, sized by the target's buffer plan.
    auto arena = step_->getAttrOfType<IntegerAttr>(attr::arenaBytes);
    int64_t buffers = arena ? arena.getInt() : 0;
    return json::Object{{"params", byRole[Role::param]},
                        {"gradients", gradBytes_},
                        {"optimizer_state", byRole[Role::opt_state]},
                        {"inputs", byRole[Role::input]},
                        {"step_results", results},
                        {"step_buffers", buffers},
                        {"total", plannedStepBytes(step_, realBytes_)}};
  }

  /// What `recompute` runs again in the backward: the ops marked
  /// dtl.recomputed, times the iterations of the loops around them.
  double recomputedFlops() const {
    double flops = 0;
    step_.walk([&](Operation *op) {
      auto costed = dyn_cast<CostOpInterface>(op);
      if (!costed || !op->hasAttr(attr::recomputed))
        return;
      double times = 1;
      for (auto repeat = op->getParentOfType<RepeatOp>(); repeat;
           repeat = repeat->getParentOfType<RepeatOp>())
        times *= double(repeat.getCount());
      flops += costed.getCost(realBytes_).flops() * times;
    });
    return flops;
  }

  /// The repeats whose backward recomputes, with how much (`recompute` as
  /// written or chosen for memory_limit).
  json::Array recomputedRepeats() const {
    json::Array out;
    for (auto repeat : step_.getBody().front().getOps<RepeatOp>())
      if (std::optional<Recompute> level = repeat.getRecompute();
          level && *level != Recompute::none)
        out.push_back(json::Object{{"source", sourcePosition(repeat.getLoc())},
                                   {"level", stringifyRecompute(*level)}});
    return out;
  }

  json::Object stepTimeJson() const {
    OpCost cost;
    for (Operation &op : step_.getBody().front())
      if (auto costed = dyn_cast<CostOpInterface>(op))
        cost += costed.getCost(realBytes_);
    double flops = cost.flops();
    double compute = flops / (options_.teraflops * 1e12);
    return json::Object{
        {"flops_per_rank", flops},
        {"matmul_flops_per_rank", cost.matmulFlops},
        {"recomputed_flops_per_rank", recomputedFlops()},
        {"recomputed_repeats", recomputedRepeats()},
        {"bytes_moved_per_rank", cost.bytes},
        {"teraflops_per_rank", options_.teraflops},
        {"compute_seconds", compute},
        {"communication_seconds", commSeconds_},
        {"communication_bytes_per_rank", (int64_t)commBytes_},
        {"pipeline_seconds", timeline_ ? timeline_->seconds : 0.0},
        {"total_seconds", compute + commSeconds_ + (timeline_ ? timeline_->seconds : 0.0)}};
  }

  void printText(const json::Object &r, raw_ostream &os) const {
    auto str = [](const json::Value *v) { return v ? v->getAsString().value_or("").str() : ""; };
    auto num = [](const json::Value *v) { return v ? v->getAsNumber().value_or(0) : 0.0; };
    auto integer = [](const json::Value *v) { return v ? v->getAsInteger().value_or(0) : 0; };
    os << "dtlc --explain " << options_.sourceFile << ": model " << str(r.get("model")) << ", mesh "
       << mesh_.getGrid().getValue() << " [";
    for (auto [i, name] : llvm::enumerate(axisNames_))
      os << (i ? ", " : "") << name << ": " << mesh_.getSizes()[i];
    os << "] = " << meshSize() << " ranks, planned for " << str(r.get("target"))
       << "\n\nTensors, per rank:\n";
    os << llvm::formatv("  {0,-10} {1,-10} {2,-18} {3,-22} {4,-18} {5}\n", "role", "name", "global",
                        "sharding", "local", "size");
    bool anyInterleaved = false;
    for (const json::Value &t : *r.getArray("tensors")) {
      const json::Object &o = *t.getAsObject();
      bool interleaved = integer(o.get("interleaved_blocks")) > 0;
      anyInterleaved |= interleaved;
      os << llvm::formatv("  {0,-10} {1,-10} {2,-18} {3,-22} {4,-18} {5}\n", str(o.get("role")),
                          str(o.get("name")), str(o.get("global")),
                          str(o.get("sharding")) + (interleaved ? " *" : ""), str(o.get("local")),
                          formatBytes(integer(o.get("bytes"))));
    }
    if (anyInterleaved)
      os << "  * stored interleaved for a split (each rank's block holds a block of every "
            "piece; checkpoints keep the declared order)\n";
    const json::Object &decay = *r.getObject("weight_decay");
    auto names = [&](const json::Array *list) {
      std::string s;
      for (const json::Value &n : *list)
        s += (s.empty() ? "" : ", ") + n.getAsString().value_or("").str();
      return s.empty() ? std::string("none") : s;
    };
    if (double rate = num(decay.get("rate")); rate == 0)
      os << "\nWeight decay: none (weight_decay = 0)\n";
    else
      os << "\nWeight decay " << llvm::format("%g", rate)
         << " (params of rank 2 or more unless declared `decay true|false`):\n"
         << "  applied to:     " << names(decay.getArray("decays")) << "\n"
         << "  not applied to: " << names(decay.getArray("exempt")) << "\n";
    os << "\nLargest activations (forward), per rank:\n";
    for (const json::Value &a : *r.getArray("activations")) {
      const json::Object &o = *a.getAsObject();
      os << llvm::formatv("  {0,-18} {1,-22} {2,-10} {3,-18} {4}\n", str(o.get("local")),
                          str(o.get("sharding")), formatBytes(integer(o.get("bytes"))),
                          str(o.get("op")), str(o.get("source")));
    }
    os << "\nCollectives of one train step, in order (x N: once per layer of a repeat):\n";
    os << llvm::formatv("  {0,-3} {1,-15} {2,-9} {3,-18} {4,-12} {5,-10} {6,-10} {7}\n", "#",
                        "kind", "axes", "tensor (local)", "sent/rank", "time", "phase", "source");
    int index = 0;
    for (const json::Value &c : *r.getArray("collectives")) {
      const json::Object &o = *c.getAsObject();
      int64_t times = integer(o.get("times"));
      bool constraint = o.getBoolean("for_constraint").value_or(false);
      os << llvm::formatv("  {0,-3} {1,-15} {2,-9} {3,-18} {4,-12} {5,-10} {6,-10} {7}{8}{9}\n",
                          ++index, str(o.get("kind")), str(o.get("axes")), str(o.get("tensor")),
                          formatBytes(integer(o.get("bytes_sent_per_rank"))),
                          timeString(num(o.get("seconds"))), str(o.get("phase")),
                          str(o.get("source")), constraint ? " (for the constraint)" : "",
                          times > 1 ? " x " + std::to_string(times) : "");
    }
    if (const json::Object *p = r.getObject("pipeline"))
      printPipeline(*p, os);
    const json::Object &m = *r.getObject("memory");
    os << "\nMemory per rank (what the program allocates):\n";
    for (auto [key, label] : {std::pair{"params", "params"},
                              {"gradients", "gradients (within the peak below)"},
                              {"optimizer_state", "optimizer state"},
                              {"inputs", "inputs"},
                              {"step_buffers", "activations, gradients, temporaries (peak)"},
                              {"step_results", "step results (loss, norms)"},
                              {"total", "total"}})
      os << llvm::formatv("  {0,-44} {1}\n", label, formatBytes(integer(m.get(key))));
    const json::Object &t = *r.getObject("step_time");
    os << "\nPredicted step time, per rank (no overlap of compute and communication):\n"
       << llvm::formatv("  compute        {0:f3} GFLOP ({1:f3} in matrix products) at {2:f0} "
                        "TFLOP/s = {3}\n",
                        num(t.get("flops_per_rank")) / 1e9,
                        num(t.get("matmul_flops_per_rank")) / 1e9, num(t.get("teraflops_per_rank")),
                        timeString(num(t.get("compute_seconds"))));
    if (double recomputed = num(t.get("recomputed_flops_per_rank"))) {
      std::string where;
      for (const json::Value &r : *t.getArray("recomputed_repeats")) {
        const json::Object &o = *r.getAsObject();
        where += (where.empty() ? "" : ", ") + str(o.get("source")) + " " + str(o.get("level"));
      }
      os << llvm::formatv("  of which recomputed in the backward ({0}): {1:f3} GFLOP\n", where,
                          recomputed / 1e9);
    }
    os << llvm::formatv("  communication  {0} sent = {1}\n",
                        formatBytes(integer(t.get("communication_bytes_per_rank"))),
                        timeString(num(t.get("communication_seconds"))));
    if (const json::Object *p = r.getObject("pipeline"))
      os << llvm::formatv("  pipeline       {0} stages, {1} micro-batches, with transfers = {2}\n",
                          integer(p->get("stages")), integer(p->get("micro_batches")),
                          timeString(num(p->get("seconds"))));
    os << llvm::formatv("  total          {0}\n", timeString(num(t.get("total_seconds"))));
    os << "  links (--link AXIS=ALPHA_US,BETA_GB_PER_S overrides):\n";
    for (const json::Value &l : *r.getArray("links")) {
      const json::Object &o = *l.getAsObject();
      os << llvm::formatv("    {0}: alpha {1} us, beta {2} GB/s ({3})\n", str(o.get("axis")),
                          num(o.get("alpha_us")), num(o.get("beta_gb_per_s")), str(o.get("model")));
    }
  }

  void printPipeline(const json::Object &p, raw_ostream &os) const {
    auto str = [](const json::Value *v) { return v ? v->getAsString().value_or("").str() : ""; };
    auto num = [](const json::Value *v) { return v ? v->getAsNumber().value_or(0) : 0.0; };
    auto integer = [](const json::Value *v) { return v ? v->getAsInteger().value_or(0) : 0; };
    double seconds = num(p.get("seconds"));
    os << llvm::formatv("\nPipeline over {0}: {1} stages, {2} micro-batches, {3} (predicted; the "
                        "stages' collectives are in their time, not in the list above):\n",
                        str(p.get("axis")), integer(p.get("stages")),
                        integer(p.get("micro_batches")), str(p.get("schedule")));
    os << llvm::formatv("  {0,-6} {1,-8} {2,-10} {3,-10} {4,-10} {5,-7} {6,-10} {7}\n", "stage",
                        "layers", "GFLOP", "compute", "transfers", "idle", "in flight",
                        "saved activations (peak)");
    for (const json::Value &v : *p.getArray("per_stage")) {
      const json::Object &o = *v.getAsObject();
      std::string layers;
      for (const json::Value &range : *o.getArray("layer_ranges")) {
        int64_t first = integer(&(*range.getAsArray())[0]),
                last = integer(&(*range.getAsArray())[1]);
        layers +=
            (layers.empty() ? "" : ",") +
            (last > first ? llvm::formatv("{0}-{1}", first, last).str() : std::to_string(first));
      }
      os << llvm::formatv(
          "  {0,-6} {1,-8} {2,-10} {3,-10} {4,-10} {5,-7} {6,-10} {7}\n", integer(o.get("stage")),
          layers, llvm::formatv("{0:f3}", num(o.get("flops")) / 1e9).str(),
          timeString(num(o.get("compute_seconds"))), timeString(num(o.get("transfer_seconds"))),
          llvm::formatv("{0:f1}%", 100 * num(o.get("idle_fraction"))).str(),
          integer(o.get("max_forwards_in_flight")),
          formatBytes(integer(o.get("saved_bytes_at_peak"))));
    }
    constexpr int kColumns = 72;
    os << llvm::formatv(
        "  timeline (F forward, B backward, ~ transfer, . idle; a column is {0}):\n",
        timeString(seconds / kColumns));
    for (int64_t s = 0; s < integer(p.get("stages")); ++s) {
      // Every span shows in at least one column; computation over transfers.
      std::string row(kColumns, '.');
      for (bool transfers : {true, false})
        for (const json::Value &v : *p.getArray("timeline")) {
          const json::Object &o = *v.getAsObject();
          bool transfer = o.getBoolean("transfer").value_or(false);
          if (integer(o.get("stage")) != s || transfer != transfers)
            continue;
          double width = seconds / kColumns;
          int first = std::min(kColumns - 1, int(num(o.get("start_seconds")) / width));
          int last = std::min(kColumns - 1, int(std::ceil(num(o.get("end_seconds")) / width)) - 1);
          for (int col = first; col <= std::max(first, last); ++col)
            row[col] = transfer ? '~' : str(o.get("what"))[0];
        }
      os << llvm::formatv("  {0,-6} |{1}|\n", s, row);
    }
    bool interleaved = integer(p.get("virtual_stages")) > 1;
    if (interleaved)
      os << "  (in flight: forwards of one virtual stage whose backward has not run)\n";
    os << llvm::formatv("  bubble: {0:f1}% of the stages' time idle, predicted; (p - 1) / ({1}m + "
                        "p - 1) = {2:f1}% for equal stages and free transfers\n",
                        100 * num(p.get("bubble_fraction")), interleaved ? "V*" : "",
                        100 * num(p.get("bubble_formula")));
  }

  ModuleOp module_;
  const ExplainOptions &options_;
  MeshAttr mesh_;
  mutable func::FuncOp step_;   // op handles: their accessors are not const
  Operation *stages_ = nullptr; ///< the pipeline's stage switch, if any
  std::optional<PipelineTimeline> timeline_;
  std::vector<std::string> axisNames_;
  llvm::DenseSet<Operation *> forward_, backward_;
  int64_t gradBytes_ = 0, realBytes_ = 4;
  double commSeconds_ = 0, commBytes_ = 0;
};

} // namespace

LogicalResult dtl::explain(ModuleOp module, const ExplainOptions &options, raw_ostream &os) {
  return Explainer(module, options).run(os);
}
