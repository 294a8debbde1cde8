//===- Optimizer.cpp - one train_step: gradients + optimizer update -------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

#include <map>

namespace dtl {
#define GEN_PASS_DEF_OPTIMIZER
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// The optimizer state a param needs, by name suffix.
SmallVector<StringRef> stateNames(OptimizerKind kind) {
  if (kind == OptimizerKind::adamw)
    return {"m", "v"};
  return {"momentum"};
}

bool hasRole(func::FuncOp fn, unsigned arg, Role role) { return argRole(fn, arg) == role; }

/// The data axes: those that split the batch (first) dimension of an input.
Axes dataAxes(func::FuncOp fn) {
  for (unsigned i = 0; i < fn.getNumArguments(); ++i)
    if (hasRole(fn, i, Role::input) && !argLayout(fn, i).dims.empty() &&
        !argLayout(fn, i).dims[0].empty())
      return argLayout(fn, i).dims[0];
  return {};
}

/// ZeRO's layout for a param of `type` laid out as `layout`: also split over
/// the data axes, on the first dimension that is not split yet (or only over
/// axes of one device) and that they divide. The same layout when there is
/// none (the tensor stays as it is).
Layout zeroLayout(MeshAttr mesh, RankedTensorType type, Layout layout, const Axes &data) {
  for (const Axes &axes : layout.dims)
    if (llvm::any_of(axes, [&](int16_t a) { return llvm::is_contained(data, a); }))
      return layout;
  // A dimension split over axes of one device is not split.
  for (auto [d, axes] : llvm::enumerate(layout.dims))
    if (mesh.span(axes) == 1 && type.getShape()[d] % mesh.span(data) == 0) {
      axes = data;
      break;
    }
  return layout;
}

struct Optimizer : dtl::impl::OptimizerBase<Optimizer> {
  MeshAttr mesh;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto modelName = module->getAttrOfType<FlatSymbolRefAttr>(attr::model);
    auto config = module->getAttrOfType<OptimizerAttr>(attr::optimizer);
    if (!modelName || !config) {
      module.emitError("the optimizer pass needs `dtl.model` and `dtl.optimizer`");
      return signalPassFailure();
    }
    auto grad = module.lookupSymbol<func::FuncOp>((modelName.getValue() + "_grad").str());
    if (!grad) {
      module.emitError("needs @") << modelName.getValue() << "_grad (run dtl-autodiff)";
      return signalPassFailure();
    }
    auto train = module->getAttrOfType<TrainAttr>(attr::train);
    int64_t zero = train ? train.getZero() : 0;
    mesh = getMesh(module);
    Axes data = dataAxes(grad);
    if (zero > 0 && (!mesh || data.empty())) {
      module.emitError("ZeRO shards over the data axes, but no input splits its batch "
                       "dimension over a mesh axis");
      return signalPassFailure();
    }
    // The ZeRO layout of every param (by argument index of @grad).
    DenseMap<unsigned, ShardingAttr> zeroShardings;
    if (zero > 0)
      for (unsigned i = 0; i < grad.getNumArguments(); ++i)
        if (hasRole(grad, i, Role::param))
          zeroShardings[i] = zeroLayout(mesh, cast<RankedTensorType>(grad.getArgument(i).getType()),
                                        argLayout(grad, i), data)
                                 .toAttr(module.getContext(), mesh.getGrid().getValue());
    // Stage 3 keeps params split everywhere: the forward and gradient
    // functions gather them where they are used.
    if (zero == 3)
      for (func::FuncOp fn : {grad, module.lookupSymbol<func::FuncOp>(modelName.getValue())})
        storeParamsSplit(fn, zeroShardings);
    // @grad stays: the gradient check of the generated program calls it.
    buildTrainStep(module, grad, config, zero, train ? train.getClipGradNorm().value : 0.0,
                   train ? train.getAccumulate() : 1, zeroShardings);
  }

  /// Param arguments (and their gradient results) take the ZeRO-3 layout.
  /// That layout is for storage: where a param is used it is constrained
  /// back to the layout the user gave it, so it is all-gathered before use
  /// (FSDP) rather than steering the computation by its storage split.
  static void storeParamsSplit(func::FuncOp fn, const DenseMap<unsigned, ShardingAttr> &zero) {
    llvm::StringMap<ShardingAttr> byName;
    OpBuilder b = OpBuilder::atBlockBegin(&fn.getBody().front());
    for (auto [i, sharding] : zero) {
      BlockArgument param = fn.getArgument(i);
      if (auto computed = fn.getArgAttrOfType<ShardingAttr>(i, attr::sharding);
          computed && computed != sharding && !param.use_empty()) {
        auto gathered =
            ShardingConstraintOp::create(b, param.getLoc(), param.getType(), param, computed);
        param.replaceAllUsesExcept(gathered, gathered);
      }
      fn.setArgAttr(i, attr::sharding, sharding);
      byName[argName(fn, i)] = sharding;
    }
    for (unsigned r = 0; r < fn.getNumResults(); ++r)
      if (resultRole(fn, r) == Role::grad && byName.count(resultName(fn, r)))
        fn.setResultAttr(r, attr::sharding, byName.lookup(resultName(fn, r)));
  }

  /// The gradient function's body once per micro-batch, in a `dtl.repeat
  /// accumulate` at `b`; returns the mean loss and gradients over the
  /// micro-batches. `outer` maps @grad's arguments to the step's, whose
  /// inputs hold `n` micro-batches: an input [n B, ...] is viewed as [B, n,
  /// ...] (a rank's rows stay its own: a batch split is of the leading
  /// part) and transposed to [n, B, ...], the loop's stacked operand. The
  /// params are invariant. The model's step (dropout's) is carried as
  /// step * n + i, so each micro-batch draws its own masks.
  static std::pair<Value, SmallVector<Value>> accumulateMicroBatches(OpBuilder &b, Location loc,
                                                                     func::FuncOp grad,
                                                                     const IRMapping &outer,
                                                                     int64_t n) {
    Block &gradBody = grad.getBody().front();
    auto gradReturn = cast<func::ReturnOp>(gradBody.getTerminator());
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    auto constant = [&](RankedTensorType type, double value) {
      return ConstantOp::create(b, loc, type, b.getF64FloatAttr(value)).getResult();
    };
    SmallVector<Value> inits, stacked, invariants;
    SmallVector<BlockArgument> carriedFrom, stackedFrom, invariantFrom;
    for (BlockArgument arg : grad.getArguments()) {
      Value v = outer.lookup(arg);
      auto micro = cast<RankedTensorType>(arg.getType());
      if (hasRole(grad, arg.getArgNumber(), Role::step)) {
        inits.push_back(MulOp::create(b, loc, scalar, v, constant(scalar, double(n))));
        carriedFrom.push_back(arg);
      } else if (hasRole(grad, arg.getArgNumber(), Role::input)) {
        ArrayRef<int64_t> shape = micro.getShape();
        SmallVector<int64_t> view{shape[0], n}, perm{1, 0}, slices{n};
        view.append(shape.begin() + 1, shape.end());
        slices.append(shape.begin(), shape.end());
        for (int64_t d = 2; d <= micro.getRank(); ++d)
          perm.push_back(d);
        Value viewed = ReshapeOp::create(b, loc, micro.clone(view), v);
        stacked.push_back(
            TransposeOp::create(b, loc, micro.clone(slices), viewed, b.getDenseI64ArrayAttr(perm)));
        stackedFrom.push_back(arg);
      } else {
        invariants.push_back(v);
        invariantFrom.push_back(arg);
      }
    }
    SmallVector<Type> types(ValueRange(inits).getTypes());
    llvm::append_range(types, gradReturn.getOperandTypes());
    auto repeat = RepeatOp::create(b, loc, types, b.getI64IntegerAttr(n), UnitAttr(),
                                   b.getUnitAttr(), RecomputeAttr(), StringAttr(), IntegerAttr(),
                                   DenseI64ArrayAttr(), inits, stacked, invariants);
    {
      OpBuilder::InsertionGuard guard(b);
      Block *body = b.createBlock(&repeat.getBody());
      body->addArgument(b.getIndexType(), loc);
      IRMapping inner;
      for (auto from : {carriedFrom, stackedFrom, invariantFrom})
        for (BlockArgument arg : from)
          inner.map(arg, body->addArgument(arg.getType(), loc));
      for (Operation &op : gradBody.without_terminator())
        b.clone(op, inner);
      SmallVector<Value> yielded;
      for (BlockArgument arg : carriedFrom)
        yielded.push_back(AddOp::create(b, loc, scalar, inner.lookup(arg), constant(scalar, 1)));
      for (Value v : gradReturn.getOperands())
        yielded.push_back(inner.lookup(v));
      YieldOp::create(b, loc, yielded);
    }
    // Each mean at its gradient's source position: the reduction that
    // follows is reported there (--explain), as without accumulation.
    SmallVector<Value> means;
    for (auto [sum, of] : llvm::zip(repeat.getStackedResults(), gradReturn.getOperands())) {
      auto type = cast<RankedTensorType>(sum.getType());
      means.push_back(MulOp::create(b, of.getLoc(), type, sum, constant(type, 1.0 / double(n))));
    }
    return {means.front(), SmallVector<Value>(ArrayRef<Value>(means).drop_front())};
  }

  /// One train_step. ZeRO stage >= 1 splits the optimizer state over the
  /// data axes, >= 2 the gradients (a constraint, so the partitioner
  /// reduce-scatters them), 3 the params too (see storeParamsSplit). With
  /// `microBatches` > 1 the inputs hold that many of the model's batches,
  /// whose gradients are summed before anything is reduced.
  void buildTrainStep(ModuleOp module, func::FuncOp grad, OptimizerAttr config, int64_t zero,
                      double clipGradNorm, int64_t microBatches,
                      const DenseMap<unsigned, ShardingAttr> &zeroShardings) {
    MLIRContext *ctx = module.getContext();
    OpBuilder b(ctx);
    Location loc = grad.getLoc();
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    OptimizerKind kind = config.getKind();
    auto named = [&](Role role, Attribute name, Attribute sharding = {}) {
      SmallVector<NamedAttribute> attrs{b.getNamedAttr(attr::role, RoleAttr::get(ctx, role))};
      if (name)
        attrs.push_back(b.getNamedAttr(attr::name, name));
      if (sharding)
        attrs.push_back(b.getNamedAttr(attr::sharding, sharding));
      return b.getDictionaryAttr(attrs);
    };

    // Arguments: params, optimizer state, inputs (as in @grad), lr, step.
    SmallVector<Type> argTypes;
    SmallVector<DictionaryAttr> argAttrs;
    SmallVector<unsigned> paramArgs, inputArgs;
    std::optional<unsigned> modelStepArg; // the model's own step (for dropout)
    for (BlockArgument arg : grad.getArguments()) {
      unsigned i = arg.getArgNumber();
      if (hasRole(grad, i, Role::step))
        modelStepArg = i;
      else
        (hasRole(grad, i, Role::param) ? paramArgs : inputArgs).push_back(i);
    }
    for (unsigned i : paramArgs) {
      argTypes.push_back(grad.getArgument(i).getType());
      argAttrs.push_back(grad.getArgAttrDict(i));
    }
    for (unsigned i : paramArgs)
      for (StringRef state : stateNames(kind)) {
        argTypes.push_back(grad.getArgument(i).getType());
        Attribute sharding =
            zero >= 1 ? Attribute(zeroShardings.lookup(i)) : grad.getArgAttr(i, attr::sharding);
        NamedAttrList attrs(
            named(Role::opt_state, b.getStringAttr(argName(grad, i) + "." + state), sharding));
        // The state is stored in its param's order.
        for (StringRef order : {attr::interleave, attr::stageLayers})
          if (Attribute value = grad.getArgAttr(i, order))
            attrs.set(order, value);
        argAttrs.push_back(attrs.getDictionary(ctx));
      }
    for (unsigned i : inputArgs) {
      auto type = cast<RankedTensorType>(grad.getArgument(i).getType());
      SmallVector<int64_t> shape(type.getShape());
      shape[0] *= microBatches;
      argTypes.push_back(type.clone(shape));
      argAttrs.push_back(grad.getArgAttrDict(i));
    }
    argTypes.append({scalar, scalar});
    argAttrs.append({named(Role::lr, {}), named(Role::step, {})});

    b.setInsertionPointAfter(grad);
    auto step = func::FuncOp::create(b, loc, "train_step", b.getFunctionType(argTypes, {}));
    step.setAllArgAttrs(argAttrs);
    Block *body = step.addEntryBlock();
    b.setInsertionPointToStart(body);

    IRMapping mapping;
    unsigned next = 0;
    for (unsigned i : paramArgs)
      mapping.map(grad.getArgument(i), body->getArgument(next++));
    unsigned firstState = next;
    next += paramArgs.size() * stateNames(kind).size();
    for (unsigned i : inputArgs)
      mapping.map(grad.getArgument(i), body->getArgument(next++));
    Value lr = body->getArgument(next), stepNumber = body->getArgument(next + 1);
    if (modelStepArg)
      mapping.map(grad.getArgument(*modelStepArg), stepNumber);

    Value loss;
    SmallVector<Value> localGrads;
    // A pipeline's stages take micro-batches from such a loop, even one.
    bool pipelined = false;
    grad.walk([&](RepeatOp repeat) { pipelined |= mesh && !stageAxes(repeat, mesh).empty(); });
    if (microBatches > 1 || pipelined) {
      std::tie(loss, localGrads) = accumulateMicroBatches(b, loc, grad, mapping, microBatches);
    } else {
      for (Operation &op : grad.getBody().front().without_terminator())
        b.clone(op, mapping);
      auto gradReturn = cast<func::ReturnOp>(grad.getBody().front().getTerminator());
      loss = mapping.lookup(gradReturn.getOperand(0));
      for (Value g : gradReturn.getOperands().drop_front())
        localGrads.push_back(mapping.lookup(g));
    }
    SmallVector<Value> grads;
    for (auto [k, local] : llvm::enumerate(localGrads))
      grads.push_back(zero >= 2 ? ShardingConstraintOp::create(b, loc, local.getType(), local,
                                                               zeroShardings.lookup(paramArgs[k]),
                                                               /*storage=*/true)
                                      .getResult()
                                : local);

    // grad_norm = sqrt(sum over params of sum(g * g)), summed grouped by the
    // gradients' layouts: sums of split gradients are partial over the same
    // axes, and partial sums add without communication, so each group costs
    // one all-reduce of a scalar, not one per param.
    // Grouped by the mesh axes that split each gradient: its sum of squares
    // is partial over exactly those. Groups over more axes come first, so
    // adding a group reduces what came before once, not per gradient.
    auto splitAxes = [&](unsigned k) {
      Attribute sharding = zero >= 2 ? Attribute(zeroShardings.lookup(paramArgs[k]))
                                     : step.getArgAttr(k, attr::sharding);
      std::vector<int16_t> axes;
      if (auto s = dyn_cast_or_null<ShardingAttr>(sharding); s && mesh)
        for (const Axes &dim : withoutTrivialAxes(mesh, Layout::fromAttr(s)).dims)
          axes.insert(axes.end(), dim.begin(), dim.end());
      llvm::sort(axes);
      return axes;
    };
    auto moreAxesFirst = [](const std::vector<int16_t> &a, const std::vector<int16_t> &b) {
      return a.size() != b.size() ? a.size() > b.size() : a < b;
    };
    std::map<std::vector<int16_t>, SmallVector<unsigned>, decltype(moreAxesFirst)> groups(
        moreAxesFirst);
    for (unsigned k = 0; k < grads.size(); ++k)
      groups[splitAxes(k)].push_back(k);
    Value sumSquares;
    for (auto &[axes, members] : groups)
      for (unsigned k : members) {
        Value g = grads[k];
        auto type = cast<RankedTensorType>(g.getType());
        Value squares = MulOp::create(b, loc, type, g, g);
        SmallVector<int64_t> all = llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()));
        Value s =
            ReduceSumOp::create(b, loc, scalar, squares, b.getDenseI64ArrayAttr(all), UnitAttr());
        sumSquares = sumSquares ? AddOp::create(b, loc, scalar, sumSquares, s).getResult() : s;
      }
    if (!sumSquares)
      sumSquares = ConstantOp::create(b, loc, scalar, b.getF64FloatAttr(0.0));
    Value gradNorm = SqrtOp::create(b, loc, scalar, sumSquares);
    // Clipping by the global norm, and the skip of a non-finite step, in
    // one scalar every update multiplies its gradient by.
    Value gradScale =
        GradScaleOp::create(b, loc, scalar, loss, gradNorm, b.getF64FloatAttr(clipGradNorm));

    SmallVector<Value> results{loss, gradNorm};
    SmallVector<DictionaryAttr> resultAttrs{named(Role::loss, {}), named(Role::grad_norm, {})};
    SmallVector<Value> newStates;
    SmallVector<DictionaryAttr> stateAttrs;
    auto f64 = [&](double v) { return b.getF64FloatAttr(v); };
    for (auto [k, i] : llvm::enumerate(paramArgs)) {
      Value param = body->getArgument(k);
      Type t = param.getType();
      unsigned numStates = stateNames(kind).size();
      SmallVector<Value> state;
      for (unsigned s = 0; s < numStates; ++s)
        state.push_back(body->getArgument(firstState + k * numStates + s));
      double weightDecay = argDecays(step, k) ? double(config.getWeightDecay()) : 0.0;
      Operation *update;
      if (kind == OptimizerKind::adamw)
        update =
            AdamwUpdateOp::create(b, loc, TypeRange{t, t, t}, param, grads[k], state[0], state[1],
                                  lr, stepNumber, gradScale, f64(config.getBeta1()),
                                  f64(config.getBeta2()), f64(config.getEps()), f64(weightDecay));
      else
        update = SgdUpdateOp::create(b, loc, TypeRange{t, t}, param, grads[k], state[0], lr,
                                     gradScale, f64(config.getMomentum()), f64(weightDecay));
      results.push_back(update->getResult(0));
      resultAttrs.push_back(step.getArgAttrDict(k));
      for (unsigned s = 0; s < numStates; ++s) {
        newStates.push_back(update->getResult(1 + s));
        stateAttrs.push_back(step.getArgAttrDict(firstState + k * numStates + s));
      }
    }
    results.append(newStates);
    resultAttrs.append(stateAttrs);
    // Updated params/state keep the role and name of the argument they replace.
    SmallVector<DictionaryAttr> cleanedResultAttrs;
    for (DictionaryAttr d : resultAttrs) {
      NamedAttrList list(d);
      list.erase(attr::init);
      list.erase(attr::decay);
      cleanedResultAttrs.push_back(list.getDictionary(ctx));
    }
    func::ReturnOp::create(b, loc, results);
    step.setType(b.getFunctionType(argTypes, ValueRange(results).getTypes()));
    step.setAllResultAttrs(cleanedResultAttrs);
  }
};

} // namespace
