//===- Statements.cpp - the model, its statements, blocks, expressions ----===//
//
// The model becomes one function: its params and inputs are arguments, its
// statements ops. A block call is expanded in place; `repeat N block(x)` is
// one dtl.repeat whose body is the block, generated once: the block's params
// become stacked arguments ([N, ...]) entering the body as slices.
//
//===----------------------------------------------------------------------===//

#include "frontend/Generator.h"

using namespace mlir;
using namespace dtl;

SmallVector<const ast::Value *> dtl::itemsOf(const ast::Value &v) {
  if (v.kind != ast::Value::Kind::Tuple)
    return {&v};
  SmallVector<const ast::Value *> items;
  for (const ast::Value &item : v.tuple)
    items.push_back(&item);
  return items;
}

void Generator::noteOperands(Diagnostic &d, ArrayRef<const ast::Expr *> operands) {
  llvm::StringSet<> noted;
  for (const ast::Expr *operand : operands)
    if (operand && operand->kind == ast::Expr::Kind::Name && noted.insert(operand->name).second)
      if (auto it = symbols.find(operand->name); it != symbols.end())
        d.attachNote(loc(it->second.pos))
            << "'" << operand->name << "' is " << formatType(it->second.value.getType());
}

func::FuncOp Generator::emitModel(const ast::Model &model) {
  // The pipeline adds @train_step beside the model's function.
  if (model.name == "train_step") {
    error(model.pos) << "a model cannot be named 'train_step': dtlc names the training step "
                        "it generates so";
    return {};
  }
  // The model's params and inputs become the function's arguments, in
  // declaration order; the params of called blocks follow as they are made.
  fn = func::FuncOp::create(b, loc(model.pos), model.name, b.getFunctionType({}, {}));
  b.setInsertionPointToStart(fn.addEntryBlock());
  for (const ast::Stmt &s : model.body) {
    if (s.kind != ast::Stmt::Kind::Param && s.kind != ast::Stmt::Kind::Input)
      continue;
    bool isParam = s.kind == ast::Stmt::Kind::Param;
    std::optional<RankedTensorType> type = tensorType(s.type, isParam);
    if (!type) {
      poisoned.insert(s.name);
      continue;
    }
    define(s.name, addArgument(*type, argAttrs(s, *type, s.name, 0), loc(s.pos)), s.pos);
    if (!isParam)
      inputNames.insert(s.name);
  }

  const ast::Stmt *returnStmt = nullptr;
  Value loss = emitStatements(model.body, "", returnStmt);
  if (!returnStmt) {
    error(model.pos) << "model '" << model.name << "' has no 'return' of its loss";
    return fn;
  }
  if (!loss)
    return fn;
  if (cast<RankedTensorType>(loss.getType()).getRank() != 0 ||
      !cast<RankedTensorType>(loss.getType()).getElementType().isF32()) {
    error(returnStmt->expr->pos) << "the loss must be an f32 scalar, but it is "
                                 << formatType(loss.getType())
                                 << " (reduce it with mean(...) or sum(...))";
    return fn;
  }
  // Evaluation also counts correct predictions when the loss is one cross_entropy.
  SmallVector<Value> results{loss};
  SmallVector<DictionaryAttr> resultAttrs{
      b.getDictionaryAttr(b.getNamedAttr(attr::role, RoleAttr::get(&ctx, Role::loss)))};
  if (crossEntropies.size() == 1) {
    auto [logits, labels] = crossEntropies.front();
    Location l = loss.getLoc();
    Value perExample = CorrectOp::create(b, l, logits, labels);
    auto all =
        llvm::to_vector(llvm::seq<int64_t>(0, cast<RankedTensorType>(labels.getType()).getRank()));
    results.push_back(
        ReduceSumOp::create(b, l, perExample, b.getDenseI64ArrayAttr(all), UnitAttr()));
    resultAttrs.push_back(
        b.getDictionaryAttr(b.getNamedAttr(attr::role, RoleAttr::get(&ctx, Role::correct))));
  }
  func::ReturnOp::create(b, loc(returnStmt->pos), results);
  fn.setType(b.getFunctionType(fn.getArgumentTypes(), ValueRange(results).getTypes()));
  fn.setAllResultAttrs(resultAttrs);
  return fn;
}

Value Generator::emitStatements(const std::vector<ast::Stmt> &body, StringRef prefix,
                                const ast::Stmt *&returnStmt) {
  Value result;
  auto qualified = [&](const std::string &name) {
    return prefix.empty() ? name : (prefix + "." + name).str();
  };
  for (const ast::Stmt &s : body) {
    switch (s.kind) {
    case ast::Stmt::Kind::Param: {
      if (blockDepth == 0)
        break; // the model's own params are arguments already
      std::optional<RankedTensorType> type = tensorType(s.type, true);
      if (!type) {
        poisoned.insert(s.name);
        break;
      }
      // Inside `repeat`s the param is stacked: one leading dim per repeat.
      std::string name = qualified(s.name);
      BlockArgument arg = blockParams.lookup(name);
      if (!arg) {
        SmallVector<int64_t> shape;
        for (const RepeatScope &scope : scopes)
          shape.push_back(scope.count);
        shape.append(type->getShape().begin(), type->getShape().end());
        arg = addArgument(f32(shape), argAttrs(s, *type, name, scopes.size()), loc(s.pos));
        blockParams[name] = arg;
      }
      define(s.name, visible(arg, /*stacked=*/true), s.pos);
      break;
    }
    case ast::Stmt::Kind::Input:
      if (blockDepth > 0)
        error(s.pos) << "a block takes its inputs as arguments, not 'input' declarations";
      break;
    case ast::Stmt::Kind::Assign:
    case ast::Stmt::Kind::Repeat: {
      Value v;
      const ast::Call *c = s.expr->kind == ast::Expr::Kind::Call ? s.expr->call.get() : nullptr;
      const ast::Block *blk = c ? blocks.lookup(c->callee) : nullptr;
      if (s.kind == ast::Stmt::Kind::Repeat) {
        std::optional<int64_t> count = sizeValue(*s.count);
        std::optional<Recompute> level = symbolizeRecompute(s.recompute);
        if (!blk)
          error(s.expr->pos) << "'repeat' needs a block call, e.g. h = repeat L layer(x)";
        else if (count && (*count < 1 || *count > kMaxRepeat))
          error(s.count->pos) << "'repeat' needs a count from 1 to " << kMaxRepeat
                              << " (dtlc's limit), got " << *count;
        else if (s.recompute == "none" || (!s.recompute.empty() && !level))
          error(s.recomputePos) << "'recompute' takes nothing (all) or 'cheap', got '"
                                << s.recompute << "'";
        else if (count && pipelineAxisOk(s, *count))
          v = repeatBlock(*blk, *c, qualified(s.name), *count,
                          level ? RecomputeAttr::get(&ctx, *level) : RecomputeAttr(),
                          s.pipelineAxis);
      } else if (blk) {
        v = callBlock(*blk, *c, qualified(s.name));
      } else {
        v = expr(*s.expr);
      }
      // `h = expr shard [...]` constrains h's layout (with_sharding_constraint).
      if (v && s.sharding) {
        auto type = cast<RankedTensorType>(v.getType());
        if (ShardingAttr attr = sharding(s, type))
          v = ShardingConstraintOp::create(b, loc(s.sharding->pos), type, v, attr);
      }
      if (v)
        define(s.name, v, s.pos);
      else
        poisoned.insert(s.name);
      break;
    }
    case ast::Stmt::Kind::Unpack: {
      const ast::Call *c = s.expr->kind == ast::Expr::Kind::Call ? s.expr->call.get() : nullptr;
      SmallVector<Value> pieces;
      if (!c || c->callee != "split")
        error(s.expr->pos) << "only split(...) gives several tensors to name";
      else if (call(*c, &pieces) && pieces.size() != s.names.size())
        error(s.pos) << "split gives " << pieces.size()
                     << (pieces.size() == 1 ? " piece" : " pieces") << ", named by "
                     << s.names.size();
      bool ok = pieces.size() == s.names.size();
      for (auto [i, name] : llvm::enumerate(s.names))
        if (ok)
          define(name, pieces[i], s.namePos[i]);
        else
          poisoned.insert(name);
      break;
    }
    case ast::Stmt::Kind::Return:
      if (returnStmt) {
        error(s.pos)
                .append(blockDepth ? "a block returns once" : "a model returns once")
                .attachNote(loc(returnStmt->pos))
            << "first return is here";
        break;
      }
      returnStmt = &s;
      result = expr(*s.expr);
      break;
    }
  }
  return result;
}

Value Generator::tensorArg(const ast::Arg &a, const std::string &callee) {
  if (a.value->kind != ast::Value::Kind::Expr) {
    error(a.pos) << callee << " takes tensor arguments";
    return {};
  }
  return expr(*a.value->expr);
}

/// The tensor arguments of a block call, or nothing after an error.
static std::optional<SmallVector<Value>> blockArguments(Generator &g, const ast::Block &blk,
                                                        const ast::Call &c) {
  SmallVector<Value> args;
  for (const ast::Arg &a : c.args) {
    Value v = a.key.empty() ? g.tensorArg(a, "block '" + blk.name + "'") : Value();
    if (!a.key.empty())
      g.error(a.pos) << "block '" << blk.name << "' takes tensor arguments";
    if (!v)
      return std::nullopt;
    args.push_back(v);
  }
  if (args.size() != blk.args.size()) {
    g.error(c.pos)
            .append("block '", blk.name, "' takes ", blk.args.size(), " argument",
                    blk.args.size() == 1 ? "" : "s", ", got ", args.size())
            .attachNote(g.loc(blk.pos))
        << "'" << blk.name << "' is declared here";
    return std::nullopt;
  }
  if (g.blockDepth >= 16) {
    g.error(c.pos) << "blocks nest more than 16 deep (does '" << blk.name << "' call itself?)";
    return std::nullopt;
  }
  return args;
}

Value Generator::expandBlock(const ast::Block &blk, ArrayRef<Value> args, StringRef prefix) {
  // A scope of its own (sizes stay visible).
  llvm::StringMap<Symbol> outer = std::move(symbols);
  llvm::StringSet<> outerPoisoned = std::move(poisoned);
  symbols.clear();
  poisoned.clear();
  ++blockDepth;
  for (auto [name, v] : llvm::zip(blk.args, args))
    define(name, v, blk.pos);
  const ast::Stmt *returnStmt = nullptr;
  Value result = emitStatements(blk.body, prefix, returnStmt);
  if (!returnStmt)
    error(blk.pos) << "block '" << blk.name << "' has no 'return'";
  --blockDepth;
  symbols = std::move(outer);
  poisoned = std::move(outerPoisoned);
  return result;
}

Value Generator::callBlock(const ast::Block &blk, const ast::Call &c, StringRef prefix) {
  std::optional<SmallVector<Value>> args = blockArguments(*this, blk, c);
  return args ? expandBlock(blk, *args, prefix) : Value();
}

int64_t Generator::meshAxis(StringRef name) const {
  if (mesh)
    for (auto [i, a] : llvm::enumerate(mesh->axes))
      if (a.name == name)
        return int64_t(i);
  return -1;
}

bool Generator::pipelineAxisOk(const ast::Stmt &s, int64_t count) {
  if (s.pipelineAxis.empty())
    return true;
  int64_t axis = meshAxis(s.pipelineAxis);
  if (axis < 0) {
    error(s.pipelinePos) << "'pipeline' needs an axis of mesh '" << meshName << "', got '"
                         << s.pipelineAxis << "'";
    return false;
  }
  if (!scopes.empty() || blockDepth > 0) {
    error(s.pipelinePos) << "only a repeat in the model's own body can be pipelined";
    return false;
  }
  if (pipelined) {
    error(s.pipelinePos) << "a model has at most one pipelined repeat";
    return false;
  }
  int64_t stages = meshShape[axis];
  if (count < stages) {
    error(s.pipelinePos) << "'pipeline " << s.pipelineAxis << "' splits " << count
                         << " layers into " << stages << " stages: each needs at least one";
    return false;
  }
  pipelined = true;
  return true;
}

void Generator::balanceStages() {
  RepeatOp repeat = pipelinedRepeat;
  if (!repeat)
    return;
  int64_t stages = meshShape[meshAxis(*repeat.getPipeline())], count = repeat.getCount();
  if (count % stages == 0)
    return; // equal stages
  // What the first stage runs besides its layers (the embedding), what the
  // last does (the head and the loss), and one layer, by FLOPs of the
  // forward (the backward's are about twice each).
  double before = 0, after = 0, layer = repeat.getCost(4).flops() / double(count);
  bool past = false;
  for (Operation &op : fn.getBody().front()) {
    if (&op == repeat.getOperation()) {
      past = true;
      continue;
    }
    if (auto costed = dyn_cast<CostOpInterface>(op))
      (past ? after : before) += costed.getCost(4).flops();
  }
  // One layer each, then each next layer to the stage it leaves least
  // loaded (with equal layers, that minimises the most loaded stage).
  SmallVector<int64_t> layers(stages, 1);
  auto load = [&](int64_t s) {
    return double(layers[s]) * layer + (s == 0 ? before : 0) + (s == stages - 1 ? after : 0);
  };
  for (int64_t left = count - stages; left > 0; --left) {
    int64_t best = 0;
    for (int64_t s = 1; s < stages; ++s)
      if (load(s) < load(best))
        best = s;
    ++layers[best];
  }
  repeat.setStageLayers(layers);
  // Every stage stores max(n) slots; its layers fill the first.
  int64_t slots = *llvm::max_element(layers) * stages;
  for (Value stacked : repeat.getStacked()) {
    auto arg = cast<BlockArgument>(stacked);
    auto type = cast<RankedTensorType>(arg.getType());
    SmallVector<int64_t> shape(type.getShape());
    shape[0] = slots;
    arg.setType(RankedTensorType::get(shape, type.getElementType()));
    fn.setArgAttr(arg.getArgNumber(), attr::stageLayers, b.getDenseI64ArrayAttr(layers));
  }
  fn.setType(FunctionType::get(&ctx, fn.getBody().front().getArgumentTypes(),
                               fn.getFunctionType().getResults()));
}

Value Generator::repeatBlock(const ast::Block &blk, const ast::Call &c, StringRef prefix,
                             int64_t count, RecomputeAttr recompute, StringRef pipelineAxis) {
  std::optional<SmallVector<Value>> args = blockArguments(*this, blk, c);
  if (!args)
    return {};
  if (args->size() != 1) {
    error(c.pos) << "'repeat' feeds a block's result back as its argument, so the block must "
                    "take one argument";
    return {};
  }
  Location l = loc(c.pos);
  Value init = args->front();
  // The body, generated once in a block of its own; the op that owns it is
  // made after, when its stacked and invariant operands are known.
  auto body = std::make_unique<Block>();
  body->addArgument(b.getIndexType(), l);
  Value carried = body->addArgument(init.getType(), l);
  scopes.push_back(RepeatScope{body.get(), count});
  Value next;
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(body.get());
    next = expandBlock(blk, {carried}, prefix);
    if (next && next.getType() != init.getType()) {
      error(c.pos) << "'repeat' needs block '" << blk.name << "' to return what it takes, but "
                   << formatType(init.getType()) << " became " << formatType(next.getType());
      next = {};
    }
    if (next)
      YieldOp::create(b, l, ValueRange{next});
  }
  RepeatScope scope = scopes.pop_back_val();
  if (!next)
    return {};
  StringAttr pipeline = pipelineAxis.empty() ? StringAttr() : b.getStringAttr(pipelineAxis);
  auto repeat =
      RepeatOp::create(b, l, TypeRange{init.getType()}, b.getI64IntegerAttr(count), UnitAttr(),
                       UnitAttr(), recompute, pipeline, IntegerAttr(), DenseI64ArrayAttr(),
                       ValueRange{init}, scope.stacked, scope.invariants);
  repeat.getBody().push_back(body.release());
  if (pipeline)
    pipelinedRepeat = repeat;
  // A pipelined repeat's stacked params are stored split into the stages'
  // consecutive blocks of layers (on one stage, as they were).
  if (pipeline && meshShape[meshAxis(pipelineAxis)] > 1)
    for (Value stacked : scope.stacked) {
      auto arg = cast<BlockArgument>(stacked);
      auto declared = fn.getArgAttrOfType<ShardingAttr>(arg.getArgNumber(), attr::sharding);
      SmallVector<SmallVector<int16_t>> dims;
      for (ArrayRef<int16_t> axes : declared.getDims())
        dims.push_back(SmallVector<int16_t>(axes));
      dims[0] = {int16_t(meshAxis(pipelineAxis))};
      fn.setArgAttr(arg.getArgNumber(), attr::sharding, ShardingAttr::get(&ctx, meshName, dims));
    }
  return repeat.getResult(0);
}

Value Generator::visible(Value v, bool stacked) {
  for (RepeatScope &scope : scopes) {
    auto [it, fresh] = scope.entered.try_emplace(v);
    if (fresh) {
      Type type = v.getType();
      unsigned position = scope.body->getNumArguments();
      if (stacked) {
        auto tensor = cast<RankedTensorType>(type);
        type = RankedTensorType::get(tensor.getShape().drop_front(), tensor.getElementType());
        // Stacked slices follow the index, the carried value and the other slices.
        position = 2 + scope.stacked.size();
        scope.stacked.push_back(v);
      } else {
        scope.invariants.push_back(v);
      }
      it->second = scope.body->insertArgument(position, type, v.getLoc());
    }
    v = it->second;
  }
  return v;
}

Value Generator::stepArgument(Location l) {
  if (!stepArg) {
    auto attrs = b.getDictionaryAttr(
        {b.getNamedAttr(attr::role, RoleAttr::get(&ctx, Role::step)),
         b.getNamedAttr(attr::name, b.getStringAttr("step")),
         b.getNamedAttr(attr::sharding, ShardingAttr::get(&ctx, meshName, {}))});
    stepArg = addArgument(f32({}), attrs, l);
  }
  return visible(stepArg, /*stacked=*/false);
}

std::pair<SmallVector<Value>, SmallVector<int64_t>> Generator::layerIndices() {
  SmallVector<Value> indices;
  SmallVector<int64_t> counts;
  for (auto [depth, scope] : llvm::enumerate(scopes)) {
    // Scope `depth`'s index enters the deeper bodies as an invariant.
    Value index = scope.body->getArgument(0);
    for (RepeatScope &inner : llvm::drop_begin(scopes, depth + 1)) {
      auto [it, fresh] = inner.entered.try_emplace(index);
      if (fresh) {
        inner.invariants.push_back(index);
        it->second = inner.body->addArgument(index.getType(), index.getLoc());
      }
      index = it->second;
    }
    indices.push_back(index);
    counts.push_back(scope.count);
  }
  return {indices, counts};
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

bool Generator::requireF32(Value v, const ast::Expr &e, StringRef what) {
  if (cast<RankedTensorType>(v.getType()).getElementType().isF32())
    return true;
  error(e.pos) << what << " needs f32 operands, but this is " << formatType(v.getType());
  return false;
}

Value Generator::expr(const ast::Expr &e) {
  switch (e.kind) {
  case ast::Expr::Kind::Number:
    return constant(e.number, f32({}), loc(e.pos));
  case ast::Expr::Kind::Name: {
    auto it = symbols.find(e.name);
    if (it == symbols.end()) {
      // A name whose definition already failed was reported there.
      if (!poisoned.contains(e.name))
        error(e.pos) << "unknown name '" << e.name << "'";
      return {};
    }
    return it->second.value;
  }
  case ast::Expr::Kind::Neg: {
    Value v = expr(*e.operands[0]);
    if (!v || !requireF32(v, e, "'-'"))
      return {};
    return NegOp::create(b, loc(e.pos), v.getType(), v);
  }
  case ast::Expr::Kind::Binary:
    return binary(e);
  case ast::Expr::Kind::Call:
    return call(*e.call);
  }
  return {};
}

Value Generator::broadcastTo(Value v, ArrayRef<int64_t> shape, Location l) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getShape() == shape)
    return v;
  int64_t offset = shape.size() - type.getRank();
  auto dims = llvm::to_vector(llvm::seq<int64_t>(offset, shape.size()));
  return BroadcastOp::create(b, l, f32(shape), v, b.getDenseI64ArrayAttr(dims));
}

/// `a @ b`: a [M..., K] (any rank >= 2) times a matrix b [K, N]; `a @
/// transpose(b)` multiplies by b^T without materialising it.
Value Generator::matmul(const ast::Expr &e, Value lhs, const ast::Expr &rhsExpr) {
  bool transposed = false;
  const ast::Expr *operand = &rhsExpr;
  if (rhsExpr.kind == ast::Expr::Kind::Call && rhsExpr.call->callee == "transpose" &&
      rhsExpr.call->args.size() == 1 && rhsExpr.call->args[0].key.empty() &&
      rhsExpr.call->args[0].value->kind == ast::Value::Kind::Expr) {
    transposed = true;
    operand = rhsExpr.call->args[0].value->expr.get();
  }
  Value rhs = expr(*operand);
  if (!rhs)
    return {};
  if (!requireF32(lhs, *e.operands[0], "'@'") || !requireF32(rhs, *operand, "'@'"))
    return {};
  auto type = withOperandNotes({e.operands[0].get(), operand}, [&] {
    return MatmulOp::inferResultType(loc(e.pos), cast<RankedTensorType>(lhs.getType()),
                                     cast<RankedTensorType>(rhs.getType()), false, transposed);
  });
  if (failed(type))
    return {};
  return MatmulOp::create(b, loc(e.pos), lhs, rhs, false, transposed);
}

Value Generator::binary(const ast::Expr &e) {
  Value lhs = expr(*e.operands[0]);
  if (lhs && e.op == '@')
    return matmul(e, lhs, *e.operands[1]);
  Value rhs = expr(*e.operands[1]);
  if (!lhs || !rhs)
    return {};
  std::string opName = std::string("'") + e.op + "'";
  if (!requireF32(lhs, *e.operands[0], opName) || !requireF32(rhs, *e.operands[1], opName))
    return {};
  auto lt = cast<RankedTensorType>(lhs.getType()), rt = cast<RankedTensorType>(rhs.getType());
  Location l = loc(e.pos);
  // Numpy broadcasting (the language's rule; dtl ops take equal shapes):
  // align trailing dimensions; sizes equal or 1.
  int64_t rank = std::max(lt.getRank(), rt.getRank());
  SmallVector<int64_t> shape(rank);
  for (int64_t i = 0; i < rank; ++i) {
    int64_t li = i - (rank - lt.getRank()), ri = i - (rank - rt.getRank());
    int64_t a = li >= 0 ? lt.getShape()[li] : 1, c = ri >= 0 ? rt.getShape()[ri] : 1;
    if (a != c && a != 1 && c != 1) {
      InFlightDiagnostic diag = error(e.pos)
                                << "shape mismatch in " << opName << ": " << formatType(lt)
                                << " and " << formatType(rt) << " do not broadcast";
      if (Diagnostic *d = diag.getUnderlyingDiagnostic())
        noteOperands(*d, {e.operands[0].get(), e.operands[1].get()});
      return {};
    }
    shape[i] = std::max(a, c);
  }
  lhs = broadcastTo(lhs, shape, l);
  rhs = broadcastTo(rhs, shape, l);
  Type t = f32(shape);
  switch (e.op) {
  case '+':
    return AddOp::create(b, l, t, lhs, rhs);
  case '-':
    return SubOp::create(b, l, t, lhs, rhs);
  case '*':
    return MulOp::create(b, l, t, lhs, rhs);
  default:
    return DivOp::create(b, l, t, lhs, rhs);
  }
}
