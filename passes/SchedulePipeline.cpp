//===- SchedulePipeline.cpp - micro-batches through pipeline stages -------===//
//
// After dtl-partition, each rank of a pipelined program holds its stage's
// block of layers, and the micro-batch loop (`dtl.repeat accumulate`) still
// runs every micro-batch's forward and backward in turn on every rank. This
// pass replaces the loop by one `scf.index_switch` on the rank's stage: each
// case is that stage's schedule, unrolled. For each micro-batch the stage
// receives the carried activation from the stage before (the first stage
// computes it: the embedding), runs its layers, and sends the result on (the
// last stage computes the head, the loss and the head's gradient); the
// backward runs the other way. What a stage computes that only it computes
// (the loss, the head's or the embedding's gradient) is zero on the other
// stages and summed over the stage axis after the switch: one all-reduce per
// such value, which also keeps a tied weight's copies on the first and last
// stages equal. The stacked params' gradients are each stage's own block.
//
// The order of forwards (F) and backwards (B) on a stage is the schedule's:
// GPipe runs every F, then every B; 1F1B runs p - 1 - s forwards, then one F
// and one B alternately, then the remaining Bs. The interleaved schedule
// (Megatron's) splits each stage's layers into V chunks (virtual stages):
// chunk v of stage s is the model's chunk v·p + s, so a micro-batch passes
// through every stage V times, the last stage sending on to the first; each
// stage runs its chunks for groups of p micro-batches in turn, with
// 2(p - 1 - s) + (V - 1)p forwards before the first backward.
//
// Sends block, so in 1F1B's steady state a stage sending forward while its
// neighbour sends back would wait forever: the transfers are ordered by
// running the stages together (orderSteps), which puts the receive first on
// one side of such a pair, and dtl-check-schedule proves the result.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace dtl {
#define GEN_PASS_DEF_SCHEDULEPIPELINE
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// Where a value of the micro-batch loop's body is computed: on every stage
/// (each its own copy or block), only on the first or the last stage, or a
/// sum of values of both (a tied weight's gradient).
enum class Home { All, First, Last, Mixed };

Home join(Home a, Home b) {
  if (a == b || b == Home::All)
    return a;
  if (a == Home::All)
    return b;
  return Home::Mixed;
}

/// One forward or backward of one micro-batch through one chunk of a
/// stage's layers (its only chunk unless the schedule is interleaved).
struct Action {
  bool forward;
  int64_t micro;
  int64_t chunk = 0;

  bool operator==(const Action &o) const {
    return forward == o.forward && micro == o.micro && chunk == o.chunk;
  }
};

/// A stage's receive before an action, the action's computation, or its
/// send after.
struct Step {
  enum Kind { Recv, Compute, Send } kind;
  size_t action;
};

/// Megatron's interleaved 1F1B on `stage` of `stages`, each with `chunks`
/// chunks: the k-th forward (backward) runs the k-th group of `stages`
/// micro-batches' way through one chunk, chunks in turn (backwards from the
/// last chunk).
SmallVector<Action> interleavedActionsOf(int64_t stage, int64_t stages, int64_t micro,
                                         int64_t chunks) {
  int64_t total = micro * chunks;
  auto at = [&](int64_t k, bool forward) {
    int64_t chunk = k / stages % chunks;
    return Action{forward, k / (stages * chunks) * stages + k % stages,
                  forward ? chunk : chunks - 1 - chunk};
  };
  int64_t warmup = std::min(total, (stages - 1 - stage) * 2 + (chunks - 1) * stages);
  SmallVector<Action> actions;
  for (int64_t k = 0; k < warmup; ++k)
    actions.push_back(at(k, true));
  for (int64_t k = 0; k < total - warmup; ++k) {
    actions.push_back(at(warmup + k, true));
    actions.push_back(at(k, false));
  }
  for (int64_t k = total - warmup; k < total; ++k)
    actions.push_back(at(k, false));
  return actions;
}

/// The actions of `stage` of `stages` over `micro` micro-batches, in order.
SmallVector<Action> actionsOf(PipelineSchedule schedule, int64_t stage, int64_t stages,
                              int64_t micro, int64_t chunks) {
  if (schedule == PipelineSchedule::interleaved)
    return interleavedActionsOf(stage, stages, micro, chunks);
  SmallVector<Action> actions;
  int64_t warmup =
      schedule == PipelineSchedule::gpipe ? micro : std::min(stages - 1 - stage, micro);
  for (int64_t i = 0; i < warmup; ++i)
    actions.push_back({true, i});
  for (int64_t i = 0; i < micro - warmup; ++i) {
    actions.push_back({true, warmup + i});
    actions.push_back({false, i});
  }
  for (int64_t i = micro - warmup; i < micro; ++i)
    actions.push_back({false, i});
  return actions;
}

struct Scheduler {
  MeshAttr mesh;
  PipelineSchedule schedule;
  RepeatOp loop, forward{}, backward{};
  int16_t axis = 0;
  int64_t stages = 1, chunks = 1;
  std::optional<ArrayRef<int64_t>> stageLayers{}; ///< uneven stages' layers
  DenseMap<Value, Home> home{};

  /// Finds the staged repeats of `loop` and where each value is computed.
  LogicalResult analyze() {
    Block &body = loop.getBodyBlock();
    for (Operation &op : body.without_terminator()) {
      auto repeat = dyn_cast<RepeatOp>(op);
      if (!repeat || !repeat.runsAsStages())
        continue;
      RepeatOp &slot = repeat.getReverse() ? backward : forward;
      if (slot)
        return repeat.emitError("a micro-batch loop can run one pipelined repeat (and its "
                                "backward), not two");
      slot = repeat;
      if (repeat.getInits().size() != 1)
        return repeat.emitError("a pipelined repeat carries one value from stage to stage");
    }
    if (!forward || !backward)
      return loop.emitError("a pipelined micro-batch loop needs the repeat's forward and backward");
    axis = stageAxes(forward, mesh)[0];
    stages = mesh.span({axis});
    chunks = forward.getVirtualStages().value_or(1);
    stageLayers = forward.getStageLayers();
    if (schedule == PipelineSchedule::interleaved && loop.getCount() % stages)
      return loop.emitError("the interleaved schedule runs micro-batches in groups of the ")
             << stages << " stages; " << loop.getCount() << " micro-batches do not divide";
    if (loop.getIndex().use_empty() == false)
      return loop.emitError("the pipeline schedule unrolls the micro-batch loop, whose body may "
                            "not read the iteration index");

    for (BlockArgument arg : body.getArguments())
      home[arg] = Home::All;
    for (Operation &op : body.without_terminator()) {
      auto operandHome = [&](Value v) { return home.lookup(v); };
      if (&op == forward || &op == backward) {
        auto repeat = cast<RepeatOp>(op);
        Home init = operandHome(repeat.getInits()[0]);
        Home allowed = &op == forward ? Home::First : Home::Last;
        if (init != Home::All && init != allowed)
          return op.emitError("the pipeline's ") << (&op == forward ? "first" : "last")
                                                 << " stage cannot compute this repeat's input";
        for (Value v : op.getOperands().drop_front())
          if (operandHome(v) != Home::All)
            return op.emitError("a pipelined repeat's layers can read params and their own "
                                "saved values, not a value one stage computes");
        home[repeat.getCarryResults()[0]] = &op == forward ? Home::Last : Home::First;
        for (Value r : repeat.getStackedResults())
          home[r] = Home::All;
        continue;
      }
      Home h = Home::All;
      for (Value v : op.getOperands()) {
        if (operandHome(v) == Home::Mixed && !isa<AddOp>(op))
          return op.emitError("reads a sum of values of the first and last pipeline stages; "
                              "only a sum of gradients can be");
        h = join(h, operandHome(v));
      }
      if (h == Home::Mixed && !isa<AddOp>(op))
        return op.emitError("combines a value only the first pipeline stage computes with one "
                            "only the last computes");
      for (Value r : op.getResults())
        home[r] = h;
    }
    for (auto [i, carried] : llvm::enumerate(loop.getCarryResults()))
      if (!carried.use_empty())
        return loop.emitError("the pipeline schedule unrolls the micro-batch loop; its carried "
                              "value #")
               << i << " is read after it";
    return success();
  }

  /// The stage that adds `term` (a value of one home) into its sum: the
  /// first for values every stage has (one copy counts), else its own.
  int64_t ownerOf(Value term) const { return home.lookup(term) == Home::Last ? stages - 1 : 0; }

  /// The addends of the loop's yielded sum `v`: a mixed value split at its adds.
  void termsOf(Value v, SmallVectorImpl<Value> &out) const {
    if (home.lookup(v) == Home::Mixed) {
      auto add = v.getDefiningOp<AddOp>();
      termsOf(add.getLhs(), out);
      termsOf(add.getRhs(), out);
      return;
    }
    out.push_back(v);
  }

  /// Whether the loop's k-th sum is summed over the stages after the switch.
  bool reducedOverStages(Value yielded) const { return home.lookup(yielded) != Home::All; }

  /// The layers `stage` runs of each chunk's `slots`, and the first of
  /// them in the model (stage s's chunk v is the model's chunk v·p + s).
  int64_t layersOn(int64_t stage, int64_t slots) const {
    return stageLayers ? (*stageLayers)[stage] : slots;
  }
  int64_t firstLayer(int64_t stage, int64_t chunk, int64_t slots) const {
    if (!stageLayers)
      return (chunk * stages + stage) * slots;
    int64_t first = 0;
    for (int64_t s = 0; s < stage; ++s)
      first += (*stageLayers)[s];
    return first;
  }

  /// A stage and one of its actions.
  using StageAction = std::pair<int64_t, Action>;

  /// Where `a` on `stage` receives its input from: the stage before (the
  /// last stage's previous chunk, from the first stage's) or, backwards,
  /// after; none where the embedding or the head's gradient starts it.
  std::optional<StageAction> producerOf(Action a, int64_t stage) const {
    return neighbour(a, stage, a.forward ? -1 : 1);
  }
  /// Where `a` on `stage` sends its output, if on.
  std::optional<StageAction> consumerOf(Action a, int64_t stage) const {
    return neighbour(a, stage, a.forward ? 1 : -1);
  }
  /// The same pass of the micro-batch `step` stages on, past the last
  /// (first) stage into the next (previous) chunk.
  std::optional<StageAction> neighbour(Action a, int64_t stage, int64_t step) const {
    if (stage + step >= 0 && stage + step < stages)
      return StageAction{stage + step, a};
    if (a.chunk + step < 0 || a.chunk + step >= chunks)
      return std::nullopt;
    Action other = a;
    other.chunk += step;
    return StageAction{step > 0 ? 0 : stages - 1, other};
  }

  /// Every stage's receives, computations and sends, in an order in which
  /// blocking transfers complete and stages wait little: all stages run
  /// together on a model of time (a forward takes 1, a backward 2, a
  /// transfer nothing), a transfer happens once both ends are free, a stage
  /// computes its next action once it has what it receives, and a stage
  /// whose send is not taken yet computes ahead (sending later) unless its
  /// receiver, free sooner, would then wait longer than it waits for the
  /// receiver. Computing ahead is what 1F1B's steady state needs: a stage
  /// sending forward while its neighbour sends back would wait forever.
  FailureOr<SmallVector<SmallVector<Step>>> orderSteps(ArrayRef<SmallVector<Action>> actions);

  LogicalResult run();
};

/// One stage's unrolled schedule.
struct StageBuilder {
  Scheduler &s;
  OpBuilder &b;
  int64_t stage;
  Location loc;
  StringRef grid;
  SmallVector<IRMapping> micro{};      ///< the loop body's values, per micro-batch
  SmallVector<Value> sums{};           ///< per yielded sum, what this stage added so far
  DenseMap<Type, Value> recvBuffers{}; ///< the operand a receive of each type names
  /// A staged repeat's stacked result per micro-batch, by chunk.
  DenseMap<std::pair<Value, int64_t>, SmallVector<Value>> chunkResults{};

  /// `v` (a value of the loop body) for micro-batch `i`, cloning what it is
  /// computed from on first use.
  Value materialize(Value v, int64_t i) {
    if (Value known = micro[i].lookupOrNull(v))
      return known;
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      micro[i].map(arg, iterationValue(arg, i));
      return micro[i].lookup(v);
    }
    Operation *def = v.getDefiningOp();
    assert(def && def != s.forward && def != s.backward && "mapped before use");
    for (Value operand : def->getOperands())
      materialize(operand, i);
    b.clone(*def, micro[i]);
    return micro[i].lookup(v);
  }

  /// What the loop's iteration `i` saw as `arg` (a carried value or a
  /// stacked operand's slice; invariants are mapped up front): made where
  /// the stage first reads it.
  Value iterationValue(BlockArgument arg, int64_t i) {
    auto type = cast<RankedTensorType>(arg.getType());
    for (auto [carried, init] : llvm::zip(s.loop.getCarryArgs(), s.loop.getInits()))
      if (carried == arg) {
        // The loop carries the model's step as step * m + i.
        Value offset = ConstantOp::create(b, loc, type, b.getF64FloatAttr(double(i)));
        return AddOp::create(b, loc, type, init, offset);
      }
    for (auto [slice, stacked] : llvm::zip(s.loop.getStackedArgs(), s.loop.getStacked()))
      if (slice == arg)
        return StackedSliceOp::create(b, loc, type, stacked, b.getI64IntegerAttr(i));
    llvm_unreachable("the loop's index is refused before");
  }

  Value recv(Type type, int64_t from) {
    Value &buffer = recvBuffers[type];
    if (!buffer) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(b.getInsertionBlock());
      buffer = ConstantOp::create(b, loc, cast<RankedTensorType>(type), b.getF64FloatAttr(0.0));
    }
    return shard::RecvOp::create(b, loc, type, grid, ArrayRef<int16_t>{s.axis}, buffer,
                                 b.getDenseI64ArrayAttr({from}), ValueRange{});
  }

  void send(Value v, int64_t to) {
    shard::SendOp::create(b, loc, v.getType(), grid, ArrayRef<int16_t>{s.axis}, v,
                          b.getDenseI64ArrayAttr({to}), ValueRange{});
  }

  /// `a`'s chunk of the stage's layers of `repeat`, from `init`: its
  /// carried result. Once the chunk last in `repeat`'s direction has run,
  /// the micro-batch's results of `repeat` are known (a stacked result
  /// whole, concatenated from the chunks', where more than the backward
  /// repeat reads it).
  Value runLayers(RepeatOp repeat, Value init, Action a) {
    int64_t i = a.micro, slots = repeat.getCount() / s.chunks, count = s.layersOn(stage, slots);
    // The stage's slots are its layers unless they are interleaved chunks
    // or, with uneven stages, some are holes.
    bool whole = s.chunks == 1 && count == slots;
    SmallVector<Value> stacked, invariants;
    for (Value v : repeat.getStacked()) {
      auto chunks = chunkResults.find({v, i});
      if (chunks != chunkResults.end()) {
        stacked.push_back(chunks->second[a.chunk]);
        continue;
      }
      Value all = materialize(v, i);
      stacked.push_back(whole ? all : chunkOf(all, a.chunk, count));
    }
    for (Value v : repeat.getInvariants())
      invariants.push_back(materialize(v, i));
    SmallVector<Type> types{init.getType()};
    for (Value r : repeat.getStackedResults())
      types.push_back(withLeading(r.getType(), count));
    auto chunk = RepeatOp::create(
        b, loc, types, b.getI64IntegerAttr(count), repeat.getReverseAttr(),
        repeat.getAccumulateAttr(), repeat.getRecomputeAttr(), repeat.getPipelineAttr(),
        IntegerAttr(), DenseI64ArrayAttr(), ValueRange{init}, stacked, invariants);
    chunk->setDiscardableAttrs(repeat->getDiscardableAttrDictionary());
    IRMapping body;
    repeat.getBody().cloneInto(&chunk.getBody(), body);
    chunk->setAttr(attr::microBatch, b.getI64IntegerAttr(i));
    if (s.chunks > 1)
      chunk->setAttr(attr::virtualStage, b.getI64IntegerAttr(a.chunk));
    chunk->setAttr(attr::firstLayer, b.getI64IntegerAttr(s.firstLayer(stage, a.chunk, slots)));
    for (auto [r, part] : llvm::zip(repeat.getStackedResults(), chunk.getStackedResults()))
      chunkResults[{r, i}].push_back(part);
    if (a.chunk == (repeat.getReverse() ? 0 : s.chunks - 1)) {
      micro[i].map(repeat.getCarryResults()[0], chunk.getCarryResults()[0]);
      for (Value r : repeat.getStackedResults()) {
        SmallVector<Value> parts = chunkResults.lookup({r, i});
        if (repeat.getReverse())
          std::reverse(parts.begin(), parts.end());
        bool onlyBackwardReads = llvm::all_of(
            r.getUsers(), [&](Operation *user) { return user == s.backward.getOperation(); });
        if (whole) {
          micro[i].map(r, parts[0]);
        } else if (!onlyBackwardReads) {
          // The chunks in order, and zeros in the stage's holes.
          SmallVector<Value> rows(parts);
          if (count < slots)
            rows.push_back(ConstantOp::create(b, loc, withLeading(r.getType(), slots - count),
                                              b.getF64FloatAttr(0.0)));
          micro[i].map(r, ConcatOp::create(b, loc, r.getType(), rows, 0, 1).getResult());
        }
        // The backward reads the forward's saved values by chunk.
        if (repeat.getReverse())
          chunkResults.erase({r, i});
      }
    }
    return chunk.getCarryResults()[0];
  }

  /// Block `chunk` of `count` layers of the stacked value `all`.
  Value chunkOf(Value all, int64_t chunk, int64_t count) {
    return StackedSliceOp::create(b, loc, withLeading(all.getType(), count), all,
                                  b.getI64IntegerAttr(chunk));
  }

  static RankedTensorType withLeading(Type type, int64_t size) {
    auto tensor = cast<RankedTensorType>(type);
    SmallVector<int64_t> shape(tensor.getShape());
    shape[0] = size;
    return RankedTensorType::get(shape, tensor.getElementType());
  }

  /// Adds micro-batch `i`'s share of the loop's sums that `ready` selects.
  void addToSums(int64_t i, llvm::function_ref<bool(Value)> ready) {
    ValueRange yielded = s.loop.getYield().getValues().drop_front(s.loop.getInits().size());
    for (auto [k, v] : llvm::enumerate(yielded)) {
      SmallVector<Value> terms;
      if (s.reducedOverStages(v))
        s.termsOf(v, terms);
      else
        terms.push_back(v);
      for (Value term : terms) {
        if ((s.reducedOverStages(v) && s.ownerOf(term) != stage) || !ready(term))
          continue;
        Value share = materialize(term, i);
        sums[k] =
            sums[k] ? AddOp::create(b, loc, share.getType(), sums[k], share).getResult() : share;
      }
    }
  }

  LogicalResult build(ArrayRef<Action> actions, ArrayRef<Step> steps) {
    int64_t count = s.loop.getCount();
    for (int64_t i = 0; i < count; ++i) {
      IRMapping &map = micro.emplace_back();
      for (auto [arg, invariant] : llvm::zip(s.loop.getInvariantArgs(), s.loop.getInvariants()))
        map.map(arg, invariant);
    }
    sums.assign(s.loop.getYield().getNumOperands() - s.loop.getInits().size(), Value());

    // What each action received and computes to send on.
    SmallVector<Value> received(actions.size()), computed(actions.size());
    for (Step step : steps) {
      Action a = actions[step.action];
      RepeatOp repeat = a.forward ? s.forward : s.backward;
      if (step.kind == Step::Recv) {
        received[step.action] = recv(repeat.getInits()[0].getType(), s.producerOf(a, stage)->first);
        continue;
      }
      if (step.kind == Step::Send) {
        send(computed[step.action], s.consumerOf(a, stage)->first);
        continue;
      }
      int64_t i = a.micro;
      if (a.forward) {
        Value init = s.producerOf(a, stage) ? received[step.action]
                                            : materialize(s.forward.getInits()[0], i);
        computed[step.action] = runLayers(s.forward, init, a);
        if (!s.consumerOf(a, stage)) {
          // The head, the loss and the head's gradient right away: the
          // backward's input, and the last stage's shares of the sums.
          materialize(s.backward.getInits()[0], i);
          addToSums(i, [&](Value term) { return s.home.lookup(term) == Home::Last; });
        }
      } else {
        Value init = s.producerOf(a, stage) ? received[step.action]
                                            : micro[i].lookup(s.backward.getInits()[0]);
        computed[step.action] = runLayers(s.backward, init, a);
        if (a.chunk == 0) // the stage's last chunk backwards
          addToSums(i, [&](Value term) { return s.home.lookup(term) != Home::Last; });
      }
    }

    SmallVector<Value> results;
    ValueRange yielded = s.loop.getYield().getValues().drop_front(s.loop.getInits().size());
    for (auto [k, v] : llvm::enumerate(yielded))
      results.push_back(sums[k] ? sums[k]
                                : ConstantOp::create(b, loc, cast<RankedTensorType>(v.getType()),
                                                     b.getF64FloatAttr(0.0))
                                      .getResult());
    scf::YieldOp::create(b, loc, results);
    return success();
  }
};

FailureOr<SmallVector<SmallVector<Step>>>
Scheduler::orderSteps(ArrayRef<SmallVector<Action>> actions) {
  SmallVector<SmallVector<Step>> steps(stages);
  SmallVector<size_t> next(stages, 0);
  SmallVector<bool> hasInput(stages, false);
  SmallVector<double> freeAt(stages, 0);
  SmallVector<SmallVector<size_t>> pending(stages); // computed actions whose send waits
  auto seconds = [](Action a) { return a.forward ? 1.0 : 2.0; };
  auto done = [&](int64_t q) { return next[q] == actions[q].size(); };
  // The stage and pending action whose send `q`'s next action waits for.
  auto awaited = [&](int64_t q) -> std::optional<std::pair<int64_t, size_t>> {
    if (done(q) || hasInput[q])
      return std::nullopt;
    std::optional<StageAction> producer = producerOf(actions[q][next[q]], q);
    if (!producer)
      return std::nullopt;
    auto [from, action] = *producer;
    for (size_t n : pending[from])
      if (actions[from][n] == action)
        return std::pair{from, n};
    return std::nullopt;
  };
  while (true) {
    // The earliest transfer, then the earliest computation.
    std::optional<int64_t> receiver, computer;
    double transferAt = 0, computeAt = 0;
    for (int64_t q = 0; q < stages; ++q)
      if (auto from = awaited(q)) {
        double at = std::max(freeAt[q], freeAt[from->first]);
        if (!receiver || at < transferAt)
          receiver = q, transferAt = at;
      }
    for (int64_t q = 0; q < stages; ++q) {
      if (done(q) || (!hasInput[q] && producerOf(actions[q][next[q]], q)))
        continue;
      // Wait for a receiver that is free before half this action is done.
      double end = freeAt[q] + seconds(actions[q][next[q]]);
      bool waits = llvm::any_of(llvm::seq<int64_t>(0, stages), [&](int64_t r) {
        auto from = awaited(r);
        return from && from->first == q && freeAt[r] - freeAt[q] < end - freeAt[r];
      });
      if (!waits && (!computer || freeAt[q] < computeAt))
        computer = q, computeAt = freeAt[q];
    }
    if (receiver && (!computer || transferAt <= computeAt)) {
      auto [from, n] = *awaited(*receiver);
      steps[from].push_back({Step::Send, n});
      steps[*receiver].push_back({Step::Recv, next[*receiver]});
      llvm::erase(pending[from], n);
      hasInput[*receiver] = true;
      freeAt[from] = freeAt[*receiver] = transferAt;
      continue;
    }
    if (computer) {
      int64_t q = *computer;
      steps[q].push_back({Step::Compute, next[q]});
      if (consumerOf(actions[q][next[q]], q))
        pending[q].push_back(next[q]);
      freeAt[q] += seconds(actions[q][next[q]]);
      ++next[q];
      hasInput[q] = false;
      continue;
    }
    if (llvm::all_of(llvm::seq<int64_t>(0, stages),
                     [&](int64_t q) { return done(q) && pending[q].empty(); }))
      return steps;
    return loop.emitError("the pipeline schedule's transfers cannot be ordered without a "
                          "deadlock");
  }
}

LogicalResult Scheduler::run() {
  if (failed(analyze()))
    return failure();
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  StringRef grid = mesh.getGrid().getValue();
  ValueRange sumResults = loop.getStackedResults();
  auto coordinate = shard::ProcessMultiIndexOp::create(b, loc, grid, ArrayRef<int16_t>{axis});
  SmallVector<int64_t> cases = llvm::to_vector(llvm::seq<int64_t>(0, stages - 1));
  auto choice = scf::IndexSwitchOp::create(b, loc, TypeRange(sumResults), coordinate->getResult(0),
                                           cases, cases.size());
  SmallVector<SmallVector<Action>> actions;
  for (int64_t stage = 0; stage < stages; ++stage)
    actions.push_back(actionsOf(schedule, stage, stages, loop.getCount(), chunks));
  FailureOr<SmallVector<SmallVector<Step>>> steps = orderSteps(actions);
  if (failed(steps))
    return failure();
  for (int64_t stage = 0; stage < stages; ++stage) {
    Region &region =
        stage < stages - 1 ? choice.getCaseRegions()[stage] : choice.getDefaultRegion();
    OpBuilder inCase(loop.getContext());
    inCase.setInsertionPointToStart(&region.emplaceBlock());
    StageBuilder builder{*this, inCase, stage, loc, grid};
    if (failed(builder.build(actions[stage], (*steps)[stage])))
      return failure();
  }
  b.setInsertionPointAfter(choice);
  ValueRange yielded = loop.getYield().getValues().drop_front(loop.getInits().size());
  for (auto [k, result] : llvm::enumerate(sumResults)) {
    Value total = choice.getResult(k);
    if (reducedOverStages(yielded[k]))
      total = shard::AllReduceOp::create(b, loc, total, grid, ArrayRef<int16_t>{axis},
                                         shard::ReductionKind::Sum);
    result.replaceAllUsesWith(total);
  }
  loop.erase();
  return success();
}

struct SchedulePipeline : dtl::impl::SchedulePipelineBase<SchedulePipeline> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MeshAttr mesh = getMesh(module);
    auto train = module->getAttrOfType<TrainAttr>(attr::train);
    PipelineSchedule schedule = train ? train.getPipeline() : PipelineSchedule::one_f_one_b;
    // The micro-batch loops of pipelines over more than one stage (one
    // stage runs its loop as it is).
    SmallVector<RepeatOp> loops;
    module.walk([&](RepeatOp repeat) {
      auto loop = repeat->getParentOfType<RepeatOp>();
      if (repeat.runsAsStages() && !stageAxes(repeat, mesh).empty() &&
          !llvm::is_contained(loops, loop))
        loops.push_back(loop);
    });
    for (RepeatOp loop : loops) {
      Scheduler scheduler{mesh, schedule, loop};
      if (failed(scheduler.run()))
        return signalPassFailure();
    }
  }
};

} // namespace
