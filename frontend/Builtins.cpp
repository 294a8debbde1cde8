//===- Builtins.cpp - the functions a .dtl expression may call ------------===//
//
// One table: each builtin's tensor arity, the named arguments it takes, and
// its builder. Result types come from the ops' own shape rules (their
// InferTypeOpInterface), so a shape rule exists once; a violation is reported
// at the call with notes on where the operands were declared.
//
//===----------------------------------------------------------------------===//

#include "frontend/Generator.h"

#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace dtl;

namespace {

/// One call of a builtin, its arguments parsed.
struct BuiltinCall {
  Generator &g;
  const ast::Call &call;
  Location loc;
  SmallVector<Value> args; ///< the tensor arguments, in order
  SmallVector<const ast::Expr *> argExprs;
  llvm::StringMap<const ast::Arg *> named;
  const ast::Value *list = nullptr;     ///< reshape's shape, transpose's permutation
  SmallVector<Value> *pieces = nullptr; ///< where split's results go (an unpacking)

  OpBuilder &b() { return g.b; }
  RankedTensorType type(size_t i) const { return cast<RankedTensorType>(args[i].getType()); }

  /// A named number (`fallback` when absent), or nullopt after an error.
  std::optional<double> namedNumber(StringRef key, double fallback) {
    const ast::Arg *a = named.lookup(key);
    if (!a)
      return fallback;
    std::optional<double> v =
        a->value->kind == ast::Value::Kind::Expr ? g.constantValue(*a->value->expr) : std::nullopt;
    if (!v)
      g.error(a->pos) << "'" << key << "' must be a number (numbers, sizes, + - * / and sqrt)";
    return v;
  }

  /// The integer entries of a size or a tuple of sizes.
  std::optional<SmallVector<int64_t>> sizes(const ast::Value &v) {
    SmallVector<int64_t> out;
    for (const ast::Value *item : itemsOf(v)) {
      if (item->kind != ast::Value::Kind::Expr) {
        g.error(item->pos) << "expected a size";
        return std::nullopt;
      }
      std::optional<int64_t> n = g.sizeValue(*item->expr);
      if (!n)
        return std::nullopt;
      out.push_back(*n);
    }
    return out;
  }

  /// Runs an op's shape rule, noting the operands' declarations on an error.
  template <typename Fn> auto shapeRule(Fn rule) { return g.withOperandNotes(argExprs, rule); }
};

using BuildFn = Value (*)(BuiltinCall &);

struct Builtin {
  unsigned arity;               ///< tensor arguments (0: one or more)
  bool f32;                     ///< every tensor argument must be f32
  SmallVector<StringRef> named; ///< the named arguments it accepts
  bool takesList;               ///< a tuple after the tensor
  BuildFn build;
};

template <typename OpTy> Value unary(BuiltinCall &c) {
  return OpTy::create(c.b(), c.loc, c.args[0].getType(), c.args[0]);
}

Value softmax(BuiltinCall &c) {
  if (c.type(0).getRank() < 1) {
    c.g.error(c.call.pos) << "softmax needs a tensor of rank 1 or more, got "
                          << formatType(c.type(0));
    return {};
  }
  return unary<SoftmaxOp>(c);
}

/// sum(x, axis = A, keepdims = true|false) and mean(...): over every axis
/// when none is given; negative axes count from the end.
Value reduction(BuiltinCall &c) {
  Generator &g = c.g;
  bool keepDims = false;
  if (const ast::Arg *a = c.named.lookup("keepdims")) {
    const ast::Value &v = *a->value;
    bool isBool = v.kind == ast::Value::Kind::Expr && v.expr->kind == ast::Expr::Kind::Name &&
                  (v.expr->name == "true" || v.expr->name == "false");
    if (!isBool) {
      g.error(a->pos) << "keepdims is true or false";
      return {};
    }
    keepDims = v.expr->name == "true";
  }
  RankedTensorType type = c.type(0);
  SmallVector<int64_t> dims;
  if (const ast::Arg *a = c.named.lookup("axis")) {
    for (const ast::Value *item : itemsOf(*a->value)) {
      std::optional<int64_t> n = g.integer(*item);
      if (!n) {
        g.error(item->pos) << "axis must be an integer or a tuple of integers";
        return {};
      }
      // Negative axes count from the end; one out of range stays as written.
      int64_t axis = *n;
      dims.push_back(axis < 0 && axis + type.getRank() >= 0 ? axis + type.getRank() : axis);
    }
  } else {
    dims = llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()));
  }
  if (failed(
          c.shapeRule([&] { return ReduceSumOp::inferResultType(c.loc, type, dims, keepDims); })))
    return {};
  llvm::sort(dims);
  OpBuilder &b = c.b();
  Value sum = ReduceSumOp::create(b, c.loc, c.args[0], b.getDenseI64ArrayAttr(dims),
                                  keepDims ? b.getUnitAttr() : UnitAttr());
  if (c.call.callee == "sum")
    return sum;
  int64_t count = 1;
  for (int64_t d : dims)
    count *= type.getShape()[d];
  auto sumType = cast<RankedTensorType>(sum.getType());
  Value scale = g.broadcastTo(g.constant(1.0 / count, g.f32({}), c.loc), sumType.getShape(), c.loc);
  return MulOp::create(b, c.loc, sumType, sum, scale);
}

Value layernorm(BuiltinCall &c) {
  std::optional<double> eps = c.namedNumber("eps", 1e-5);
  if (!eps)
    return {};
  auto types = c.shapeRule(
      [&] { return LayerNormOp::inferResultTypes(c.loc, c.type(0), c.type(1), c.type(2)); });
  if (failed(types))
    return {};
  return LayerNormOp::create(c.b(), c.loc, c.args[0], c.args[1], c.args[2],
                             c.b().getF64FloatAttr(*eps))
      .getResult();
}

Value embedding(BuiltinCall &c) {
  if (failed(
          c.shapeRule([&] { return EmbeddingOp::inferResultType(c.loc, c.type(0), c.type(1)); })))
    return {};
  return EmbeddingOp::create(c.b(), c.loc, c.args[0], c.args[1], nullptr);
}

/// causal_attention(q, k, v, heads = H): heads of C / H channels.
Value causalAttention(BuiltinCall &c) {
  const ast::Arg *headsArg = c.named.lookup("heads");
  if (!headsArg) {
    c.g.error(c.call.pos) << "causal_attention(q, k, v, heads = H) needs the number of heads";
    return {};
  }
  std::optional<SmallVector<int64_t>> heads = c.sizes(*headsArg->value);
  if (!heads)
    return {};
  int64_t channels = c.type(0).getRank() == 3 ? c.type(0).getShape()[2] : 0;
  int64_t h = heads->front();
  if (heads->size() != 1 || h < 1 || (channels && channels % h != 0)) {
    c.g.error(headsArg->pos) << "heads must divide the channels (" << channels << ")";
    return {};
  }
  int64_t headDim = channels ? channels / h : 1;
  if (failed(c.shapeRule([&] {
        return CausalAttentionOp::inferResultTypes(c.loc, c.type(0), c.type(1), c.type(2), headDim);
      })))
    return {};
  return CausalAttentionOp::create(c.b(), c.loc, c.args[0], c.args[1], c.args[2],
                                   c.b().getI64IntegerAttr(headDim))
      .getResult();
}

Value reshape(BuiltinCall &c) {
  if (!c.list) {
    c.g.error(c.call.pos) << "reshape(x, (D0, D1, ...)) needs the new shape";
    return {};
  }
  std::optional<SmallVector<int64_t>> shape = c.sizes(*c.list);
  if (!shape)
    return {};
  if (llvm::any_of(*shape, [](int64_t d) { return d < 1; })) {
    c.g.error(c.list->pos) << "reshape's sizes must be at least 1";
    return {};
  }
  auto result = RankedTensorType::get(*shape, c.type(0).getElementType());
  if (failed(c.shapeRule([&] { return ReshapeOp::checkShapes(c.loc, c.type(0), result); })))
    return {};
  return ReshapeOp::create(c.b(), c.loc, result, c.args[0]);
}

/// transpose(x) swaps a matrix's dims; transpose(x, (p0, p1, ...)) permutes.
Value transpose(BuiltinCall &c) {
  RankedTensorType type = c.type(0);
  SmallVector<int64_t> permutation;
  if (c.list) {
    std::optional<SmallVector<int64_t>> list = c.sizes(*c.list);
    if (!list)
      return {};
    permutation = *list;
  } else if (type.getRank() == 2) {
    permutation = {1, 0};
  } else {
    c.g.error(c.call.pos) << "transpose(x) swaps the dims of a matrix; for " << formatType(type)
                          << " give the permutation: transpose(x, (0, 2, 1, 3))";
    return {};
  }
  if (failed(c.shapeRule([&] { return TransposeOp::inferResultType(c.loc, type, permutation); })))
    return {};
  return TransposeOp::create(c.b(), c.loc, c.args[0], c.b().getDenseI64ArrayAttr(permutation));
}

/// The `dim` argument of split and concat (torch's name; negative counts
/// from the end), for a tensor of `rank`; nullopt after an error.
std::optional<int64_t> piecesDim(BuiltinCall &c, int64_t rank) {
  int64_t dim = 0;
  if (const ast::Arg *a = c.named.lookup("dim")) {
    std::optional<int64_t> n = c.g.integer(*a->value);
    if (!n) {
      c.g.error(a->pos) << "dim must be an integer";
      return std::nullopt;
    }
    dim = *n;
  }
  if (dim < -rank || dim >= rank) {
    c.g.error(c.call.pos) << "'" << c.call.callee << "' has no dim " << dim
                          << " in a tensor of rank " << rank;
    return std::nullopt;
  }
  return dim < 0 ? dim + rank : dim;
}

/// split(x, S, dim = d): pieces of size S along d (the last one smaller when
/// S does not divide it), or split(x, (S0, S1, ...), dim = d) with those
/// sizes, as torch.split; unpacked into names: q, k, v = split(...).
Value split(BuiltinCall &c) {
  Generator &g = c.g;
  RankedTensorType type = c.type(0);
  if (!c.pieces) {
    g.error(c.call.pos) << "split gives several tensors: name each piece, e.g. "
                           "q, k, v = split(qkv, C, dim = 2)";
    return {};
  }
  if (!c.list) {
    g.error(c.call.pos) << "split(x, S, dim = d) needs the piece size S or a tuple of sizes";
    return {};
  }
  std::optional<int64_t> dim = piecesDim(c, type.getRank());
  std::optional<SmallVector<int64_t>> sizes = c.sizes(*c.list);
  if (!dim || !sizes)
    return {};
  int64_t whole = type.getDimSize(*dim);
  if (llvm::any_of(*sizes, [](int64_t s) { return s < 1; })) {
    g.error(c.list->pos) << "split's sizes must be at least 1";
    return {};
  }
  if (sizes->size() == 1 && c.list->kind != ast::Value::Kind::Tuple) {
    int64_t size = sizes->front();
    sizes->clear();
    for (int64_t at = 0; at < whole; at += size)
      sizes->push_back(std::min(size, whole - at));
  }
  int64_t total = 0;
  for (int64_t s : *sizes)
    total += s;
  if (total != whole) {
    g.error(c.list->pos) << "split's sizes add up to " << total << ", but dim " << *dim << " of "
                         << formatType(type) << " is " << whole;
    return {};
  }
  SmallVector<Type> types;
  for (int64_t s : *sizes) {
    SmallVector<int64_t> shape(type.getShape());
    shape[*dim] = s;
    types.push_back(RankedTensorType::get(shape, type.getElementType()));
  }
  auto op = SplitOp::create(c.b(), c.loc, types, c.args[0], c.b().getI64IntegerAttr(*dim),
                            c.b().getI64IntegerAttr(1));
  c.pieces->assign(op.getResults().begin(), op.getResults().end());
  return op.getResults().front();
}

/// concat(a, b, ..., dim = d): torch.cat; every other dim must agree.
Value concat(BuiltinCall &c) {
  RankedTensorType first = c.type(0);
  std::optional<int64_t> dim = piecesDim(c, first.getRank());
  if (!dim)
    return {};
  SmallVector<int64_t> shape(first.getShape());
  shape[*dim] = 0;
  for (auto [i, v] : llvm::enumerate(c.args)) {
    RankedTensorType t = c.type(i);
    bool fits = t.getRank() == first.getRank();
    for (int64_t d = 0; fits && d < t.getRank(); ++d)
      fits = d == *dim || t.getDimSize(d) == first.getDimSize(d);
    if (!fits) {
      c.g.error(c.argExprs[i]->pos) << "concat along dim " << *dim << " needs the other dims of "
                                    << formatType(first) << ", got " << formatType(t);
      return {};
    }
    shape[*dim] += t.getDimSize(*dim);
  }
  return ConcatOp::create(c.b(), c.loc, RankedTensorType::get(shape, first.getElementType()),
                          c.args, c.b().getI64IntegerAttr(*dim), c.b().getI64IntegerAttr(1));
}

/// dropout(x, rate = R): inside repeats, each layer draws its own mask.
Value dropout(BuiltinCall &c) {
  std::optional<double> rate = c.namedNumber("rate", 0.1);
  if (!rate)
    return {};
  if (*rate < 0 || *rate >= 1) {
    c.g.error(c.call.pos) << "dropout's rate must be in [0, 1), got " << *rate;
    return {};
  }
  if (*rate == 0)
    return c.args[0]; // the identity, at no cost
  Value step = c.g.stepArgument(c.loc);
  auto [layers, counts] = c.g.layerIndices();
  OpBuilder &b = c.b();
  return DropoutOp::create(b, c.loc, c.args[0].getType(), c.args[0], step, layers,
                           b.getF64FloatAttr(*rate), b.getI64IntegerAttr(c.g.dropoutStreams++),
                           b.getDenseI64ArrayAttr(counts));
}

/// What an empty count becomes (see crossEntropy): far below f32's ulp at 1,
/// far above its smallest normal.
constexpr double kEmptyBatchCount = 1e-30;

/// cross_entropy(logits, labels): the mean over the examples whose label
/// is kept (PyTorch's ignore_index=-1: negative labels are ignored and not
/// counted). A batch whose every label is ignored has loss 0: the count is
/// padded by 1e-30, which leaves any count of 1 or more exactly as it is and
/// turns 0 / 0 into 0 / 1e-30.
Value crossEntropy(BuiltinCall &c) {
  auto type =
      c.shapeRule([&] { return CrossEntropyOp::inferResultType(c.loc, c.type(0), c.type(1)); });
  if (failed(type))
    return {};
  // Evaluation counts correct predictions of a loss outside any repeat.
  if (c.g.scopes.empty())
    c.g.crossEntropies.push_back({c.args[0], c.args[1]});
  OpBuilder &b = c.b();
  Value perExample = CrossEntropyOp::create(b, c.loc, c.args[0], c.args[1]);
  auto all = llvm::to_vector(llvm::seq<int64_t>(0, type->getRank()));
  Value sum = ReduceSumOp::create(b, c.loc, perExample, b.getDenseI64ArrayAttr(all), UnitAttr());
  Value kept = LabelKeptOp::create(b, c.loc, *type, c.args[1]);
  Value count = ReduceSumOp::create(b, c.loc, kept, b.getDenseI64ArrayAttr(all), UnitAttr());
  Value padded = AddOp::create(b, c.loc, count, c.g.constant(kEmptyBatchCount, c.g.f32({}), c.loc));
  return DivOp::create(b, c.loc, sum, padded);
}

const llvm::StringMap<Builtin> &builtins() {
  static const llvm::StringMap<Builtin> table = {
      {"relu", {1, true, {}, false, unary<ReluOp>}},
      {"gelu", {1, true, {}, false, unary<GeluOp>}},
      {"exp", {1, true, {}, false, unary<ExpOp>}},
      {"log", {1, true, {}, false, unary<LogOp>}},
      {"tanh", {1, true, {}, false, unary<TanhOp>}},
      {"sqrt", {1, true, {}, false, unary<SqrtOp>}},
      {"softmax", {1, true, {}, false, softmax}},
      {"sum", {1, true, {"axis", "keepdims"}, false, reduction}},
      {"mean", {1, true, {"axis", "keepdims"}, false, reduction}},
      {"layernorm", {3, true, {"eps"}, false, layernorm}},
      {"embedding", {2, false, {}, false, embedding}},
      {"causal_attention", {3, true, {"heads"}, false, causalAttention}},
      {"reshape", {1, false, {}, true, reshape}},
      {"split", {1, true, {"dim"}, true, split}},
      {"concat", {0, true, {"dim"}, false, concat}},
      {"transpose", {1, true, {}, true, transpose}},
      {"dropout", {1, true, {"rate"}, false, dropout}},
      {"cross_entropy", {2, false, {}, false, crossEntropy}},
  };
  return table;
}

} // namespace

Value Generator::call(const ast::Call &c, SmallVector<Value> *pieces) {
  if (blocks.count(c.callee)) {
    error(c.pos) << "block '" << c.callee << "' is called as a whole statement: NAME = " << c.callee
                 << "(...) or NAME = repeat N " << c.callee << "(...)";
    return {};
  }
  auto found = builtins().find(c.callee);
  if (found == builtins().end()) {
    SmallVector<StringRef> names;
    for (const auto &entry : builtins())
      names.push_back(entry.getKey());
    llvm::sort(names);
    error(c.pos) << "unknown function '" << c.callee << "' (known: " << llvm::join(names, ", ")
                 << ", and the blocks declared with 'block')";
    return {};
  }
  const Builtin &builtin = found->second;
  BuiltinCall call{*this, c, loc(c.pos), {}, {}, {}, nullptr, pieces};
  for (const ast::Arg &a : c.args) {
    if (!a.key.empty()) {
      if (!llvm::is_contained(builtin.named, a.key)) {
        error(a.pos) << "'" << c.callee << "' has no argument named '" << a.key << "'";
        return {};
      }
      call.named[a.key] = &a;
      continue;
    }
    if (builtin.takesList && !call.args.empty() && !call.list) {
      call.list = a.value.get();
      continue;
    }
    Value v = tensorArg(a, "'" + c.callee + "'");
    if (!v)
      return {};
    call.args.push_back(v);
    call.argExprs.push_back(a.value->expr.get());
  }
  if (builtin.arity == 0 && call.args.empty()) {
    error(c.pos) << "'" << c.callee << "' takes one or more tensor arguments";
    return {};
  }
  if (builtin.arity != 0 && call.args.size() != builtin.arity) {
    error(c.pos) << "'" << c.callee << "' takes " << builtin.arity << " tensor argument"
                 << (builtin.arity == 1 ? "" : "s") << ", got " << call.args.size();
    return {};
  }
  if (builtin.f32)
    for (auto [v, e] : llvm::zip(call.args, call.argExprs))
      if (!requireF32(v, *e, "'" + c.callee + "'"))
        return {};
  return builtin.build(call);
}
