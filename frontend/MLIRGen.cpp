//===- MLIRGen.cpp - AST -> dtl dialect, with the semantic checks ---------===//
//
// Like Toy's MLIRGen: walks the AST once, checks names, shapes and
// shardings as it goes, and emits the global-view module. Every value gets
// the FileLineColLoc of the source that made it.
//
//===----------------------------------------------------------------------===//

#include "frontend/MLIRGen.h"

#include "dialects/dtl/Contract.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>

using namespace mlir;
using namespace dtl;

namespace {

std::string formatType(Type type) {
  auto t = cast<RankedTensorType>(type);
  std::string s;
  llvm::raw_string_ostream os(s);
  os << (t.getElementType().isF32() ? "f32" : "i32") << '[';
  llvm::interleaveComma(t.getShape(), os);
  os << ']';
  return s;
}

/// The entries of a tuple value, or the value itself.
SmallVector<const ast::Value *> itemsOf(const ast::Value &v) {
  if (v.kind != ast::Value::Kind::Tuple)
    return {&v};
  SmallVector<const ast::Value *> items;
  for (const ast::Value &item : v.tuple)
    items.push_back(&item);
  return items;
}

class Generator {
public:
  Generator(MLIRContext &ctx, StringRef file, const FrontendOptions &options)
      : ctx(ctx), b(&ctx), file(file), options(options) {}

  OwningOpRef<ModuleOp> run(const ast::Program &program);

private:
  MLIRContext &ctx;
  OpBuilder b;
  StringRef file;
  const FrontendOptions &options;
  bool hadError = false;

  struct Symbol {
    Value value;
    ast::Pos pos;
  };
  llvm::StringMap<Symbol> symbols;
  llvm::StringSet<> poisoned; ///< names whose definition failed (already reported)
  llvm::StringMap<int64_t> sizes;
  llvm::StringSet<> inputNames;
  const ast::Mesh *mesh = nullptr;
  std::vector<int64_t> meshShape;
  std::string meshName = "mesh";
  SmallVector<std::pair<Value, Value>> crossEntropies; // (logits, labels)
  func::FuncOp fn;
  llvm::StringMap<const ast::Block *> blocks;
  /// Params made by block calls, by full name (`h.w_fc`).
  llvm::StringMap<BlockArgument> blockParams;
  /// The `step` argument dropout draws its mask with, made on first use.
  Value stepArg;
  int64_t dropoutStreams = 0;
  /// Enclosing `repeat`s of the block being expanded: (count, this layer).
  SmallVector<std::pair<int64_t, int64_t>> layerStack;
  unsigned blockDepth = 0;

  Location loc(ast::Pos p) {
    return FileLineColLoc::get(&ctx, p.file ? StringRef(*p.file) : file, p.line, p.col);
  }
  InFlightDiagnostic error(ast::Pos p) {
    hadError = true;
    return emitError(loc(p));
  }

  RankedTensorType f32(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getF32Type());
  }

  // Declarations -----------------------------------------------------------
  bool selectMesh(const ast::Program &program, const ast::Train *train);
  bool resolveSizes(const ast::Model &model);
  std::optional<RankedTensorType> tensorType(const ast::TensorType &t, bool isParam);
  Attribute sharding(const ast::Stmt &decl, RankedTensorType type);
  Attribute initializer(const ast::Stmt &decl);
  func::FuncOp emitModel(const ast::Model &model);
  void define(const std::string &name, Value v, ast::Pos pos);
  BlockArgument addArgument(RankedTensorType type, DictionaryAttr attrs, Location l);
  DictionaryAttr argAttrs(const ast::Stmt &decl, RankedTensorType type, StringRef name,
                          unsigned stacked);
  /// Emits assignments (and blocks' params); returns the `return` value, or
  /// null (with `returnStmt` null when there was none).
  Value emitStatements(const std::vector<ast::Stmt> &body, StringRef prefix,
                       const ast::Stmt *&returnStmt);
  /// A positional argument as a tensor (errors name `callee`).
  Value tensorArg(const ast::Arg &a, const std::string &callee);
  Value callBlock(const ast::Block &blk, const ast::Call &c, StringRef prefix,
                  std::optional<int64_t> repeat);
  std::optional<int64_t> sizeValue(const ast::Expr &e);
  /// A number computed from literals and sizes (`0.02 / sqrt(2 * L)`), or
  /// nullopt (unreported) when `e` is not such an expression.
  std::optional<double> constantValue(const ast::Expr &e);

  // Expressions -------------------------------------------------------------
  Value expr(const ast::Expr &e);
  Value binary(const ast::Expr &e);
  Value call(const ast::Call &c);
  Value reduction(const ast::Call &c, ArrayRef<Value> args, ArrayRef<const ast::Expr *> argExprs,
                  const llvm::StringMap<const ast::Arg *> &named);
  Value matmul(const ast::Expr &e, Value lhs, const ast::Expr &rhsExpr);
  Value broadcastTo(Value v, ArrayRef<int64_t> shape, Location l);
  Value constant(double value, RankedTensorType type, Location l) {
    return ConstantOp::create(b, l, type, b.getF64FloatAttr(value));
  }
  bool requireF32(Value v, const ast::Expr &e, StringRef what);

  // Train section -----------------------------------------------------------
  void emitTrain(ModuleOp module, const ast::Train &train);
  std::optional<double> number(const ast::Value &v);
  DataAttr dataSource(const ast::DataSource &source);
};

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

bool Generator::selectMesh(const ast::Program &program, const ast::Train *train) {
  llvm::StringMap<const ast::Mesh *> meshes;
  for (const ast::Mesh &m : program.meshes)
    if (!meshes.try_emplace(m.name, &m).second)
      error(m.pos) << "mesh '" << m.name << "' is declared twice";
  if (train) {
    mesh = meshes.lookup(train->mesh);
    if (!mesh) {
      error(train->meshPos) << "unknown mesh '" << train->mesh << "'";
      return false;
    }
  } else if (program.meshes.size() == 1) {
    mesh = &program.meshes.front();
  } else if (program.meshes.size() > 1) {
    error(program.meshes[1].pos) << "several meshes and no train section to choose one";
    return false;
  }
  if (!mesh) {
    meshShape = {1};
    return true;
  }
  meshName = mesh->name;
  llvm::StringSet<> seen;
  for (const ast::MeshAxis &axis : mesh->axes) {
    if (!seen.insert(axis.name).second)
      error(axis.pos) << "mesh axis '" << axis.name << "' is declared twice";
    if (axis.size < 1)
      error(axis.pos) << "mesh axis '" << axis.name << "' must have a positive size";
    auto it = options.meshSizes.find(axis.name);
    meshShape.push_back(it != options.meshSizes.end() ? it->second : axis.size);
  }
  for (const auto &[name, size] : options.meshSizes)
    if (!seen.contains(name))
      error(mesh->pos) << "--mesh sets axis '" << name << "', which mesh '" << mesh->name
                       << "' does not have";
  return !hadError;
}

bool Generator::resolveSizes(const ast::Model &model) {
  for (const ast::SizeParam &p : model.sizes) {
    auto it = options.sizes.find(p.name);
    if (it != options.sizes.end())
      sizes[p.name] = it->second;
    else if (p.defaultValue)
      sizes[p.name] = *p.defaultValue;
    else
      error(p.pos) << "size '" << p.name << "' has no value: give it a default or pass -D "
                   << p.name << "=N";
  }
  for (const auto &[name, value] : options.sizes)
    if (!sizes.count(name))
      error(model.pos) << "-D " << name << " does not name a size of model '" << model.name << "'";
  return !hadError;
}

std::optional<int64_t> Generator::sizeValue(const ast::Expr &e) {
  switch (e.kind) {
  case ast::Expr::Kind::Number:
    if (e.number == (int64_t)e.number)
      return (int64_t)e.number;
    break;
  case ast::Expr::Kind::Name: {
    auto it = sizes.find(e.name);
    if (it != sizes.end())
      return it->second;
    error(e.pos) << "unknown size '" << e.name << "'";
    return std::nullopt;
  }
  case ast::Expr::Kind::Binary: {
    std::optional<int64_t> a = sizeValue(*e.operands[0]), c = sizeValue(*e.operands[1]);
    if (!a || !c)
      return std::nullopt;
    switch (e.op) {
    case '+':
      return *a + *c;
    case '-':
      return *a - *c;
    case '*':
      return *a * *c;
    case '/':
      if (*c != 0 && *a % *c == 0)
        return *a / *c;
      error(e.pos) << *a << " / " << *c << " is not a whole number";
      return std::nullopt;
    }
    break;
  }
  default:
    break;
  }
  error(e.pos) << "expected a size: an integer expression of sizes such as 4 * C";
  return std::nullopt;
}

std::optional<double> Generator::constantValue(const ast::Expr &e) {
  switch (e.kind) {
  case ast::Expr::Kind::Number:
    return e.number;
  case ast::Expr::Kind::Name:
    if (auto it = sizes.find(e.name); it != sizes.end())
      return double(it->second);
    return std::nullopt;
  case ast::Expr::Kind::Neg:
    if (std::optional<double> v = constantValue(*e.operands[0]))
      return -*v;
    return std::nullopt;
  case ast::Expr::Kind::Binary: {
    std::optional<double> a = constantValue(*e.operands[0]), c = constantValue(*e.operands[1]);
    if (!a || !c || e.op == '@' || (e.op == '/' && *c == 0))
      return std::nullopt;
    return e.op == '+' ? *a + *c : e.op == '-' ? *a - *c : e.op == '*' ? *a * *c : *a / *c;
  }
  case ast::Expr::Kind::Call: {
    const ast::Call &c = *e.call;
    if (c.callee != "sqrt" || c.args.size() != 1 || !c.args[0].key.empty() ||
        c.args[0].value->kind != ast::Value::Kind::Expr)
      return std::nullopt;
    std::optional<double> v = constantValue(*c.args[0].value->expr);
    if (!v || *v < 0)
      return std::nullopt;
    return std::sqrt(*v);
  }
  }
  return std::nullopt;
}

std::optional<RankedTensorType> Generator::tensorType(const ast::TensorType &t, bool isParam) {
  Type elt;
  if (t.dtype == "f32")
    elt = b.getF32Type();
  else if (t.dtype == "i32" && !isParam)
    elt = b.getI32Type();
  else if (t.dtype == "bf16" || t.dtype == "f16")
    error(t.pos) << t.dtype << " is not supported yet (f32 only for now)";
  else
    error(t.pos) << "unknown dtype '" << t.dtype << "'" << (isParam ? " (params are f32)" : "");
  SmallVector<int64_t> shape;
  for (const ast::Dim &d : t.dims) {
    std::optional<int64_t> size = sizeValue(*d.expr);
    if (!size)
      continue;
    if (*size < 1)
      error(d.pos) << "dimension sizes must be positive, got " << *size;
    shape.push_back(*size);
  }
  if (!elt || shape.size() != t.dims.size())
    return std::nullopt;
  return RankedTensorType::get(shape, elt);
}

Attribute Generator::sharding(const ast::Stmt &decl, RankedTensorType type) {
  SmallVector<SmallVector<int16_t>> dims(type.getRank());
  if (!decl.sharding)
    return ShardingAttr::get(&ctx, meshName, dims);
  const ast::Sharding &s = *decl.sharding;
  if (s.dims.size() != (size_t)type.getRank()) {
    error(s.pos) << "the sharding has " << s.dims.size() << " entries but '" << decl.name
                 << "' has " << type.getRank() << " dimensions";
    return {};
  }
  llvm::StringMap<ast::Pos> used;
  bool ok = true;
  for (auto [d, axes] : llvm::enumerate(s.dims)) {
    int64_t span = 1;
    for (const ast::AxisRef &ref : axes) {
      if (ref.name == "_") {
        if (axes.size() > 1) {
          error(ref.pos) << "'_' (replicated) cannot be combined with mesh axes";
          ok = false;
        }
        continue;
      }
      int16_t index = -1;
      if (mesh)
        for (auto [i, a] : llvm::enumerate(mesh->axes))
          if (a.name == ref.name)
            index = i;
      if (index < 0) {
        auto diag = error(ref.pos) << "unknown mesh axis '" << ref.name << "'";
        if (mesh)
          diag.attachNote(loc(mesh->pos)) << "mesh '" << mesh->name << "' is declared here";
        ok = false;
        continue;
      }
      auto [it, fresh] = used.try_emplace(ref.name, ref.pos);
      if (!fresh) {
        auto diag = error(ref.pos) << "mesh axis '" << ref.name
                                   << "' is used twice in the sharding of '" << decl.name << "'";
        diag.attachNote(loc(it->second)) << "first used here";
        ok = false;
        continue;
      }
      dims[d].push_back(index);
      span *= meshShape[index];
    }
    if (ok && type.getShape()[d] % span != 0) {
      auto diag = error(decl.sharding->dims[d].front().pos)
                  << "dimension " << d << " of '" << decl.name << "' (size "
                  << type.getShape()[d] << ") is not divisible by " << span
                  << ", the number of devices it is split over";
      for (const ast::AxisRef &ref : axes)
        for (auto [i, a] : llvm::enumerate(mesh->axes))
          if (a.name == ref.name)
            diag.attachNote(loc(a.pos)) << "mesh axis '" << a.name << "' has size " << meshShape[i]
                                        << (meshShape[i] != a.size ? " (set by --mesh)" : "");
      ok = false;
    }
  }
  return ok ? ShardingAttr::get(&ctx, meshName, dims) : Attribute();
}

Attribute Generator::initializer(const ast::Stmt &decl) {
  if (!decl.init)
    return InitAttr::get(&ctx, InitKind::zeros, F64(0), F64(0));
  const ast::Call &c = *decl.init;
  struct Form {
    InitKind kind;
    SmallVector<StringRef> params;
  };
  static const llvm::StringMap<Form> forms = {{"zeros", {InitKind::zeros, {}}},
                                              {"ones", {InitKind::ones, {}}},
                                              {"normal", {InitKind::normal, {"mean", "std"}}},
                                              {"uniform", {InitKind::uniform, {"low", "high"}}}};
  auto form = forms.find(c.callee);
  if (form == forms.end()) {
    error(c.pos) << "unknown initializer '" << c.callee
                 << "' (known: zeros, ones, normal(mean, std), uniform(low, high))";
    return {};
  }
  if (c.args.size() != form->second.params.size()) {
    error(c.pos) << "'" << c.callee << "' takes " << form->second.params.size() << " arguments";
    return {};
  }
  SmallVector<double> numbers(2, 0.0);
  for (auto [i, arg, param] : llvm::enumerate(c.args, form->second.params)) {
    std::optional<double> v =
        arg.value->kind == ast::Value::Kind::Expr ? constantValue(*arg.value->expr) : std::nullopt;
    if (!v || (!arg.key.empty() && arg.key != param)) {
      error(arg.pos) << "expected a number for '" << param
                     << "' (numbers, sizes, + - * / and sqrt(...))";
      return {};
    }
    numbers[i] = *v;
  }
  return InitAttr::getChecked([&] { return error(c.pos); }, &ctx, form->second.kind,
                              F64(numbers[0]), F64(numbers[1]));
}

void Generator::define(const std::string &name, Value v, ast::Pos pos) {
  auto [it, fresh] = symbols.try_emplace(name, Symbol{v, pos});
  if (!fresh)
    error(pos).append("'", name, "' is already defined").attachNote(loc(it->second.pos))
        << "previous definition is here";
}

BlockArgument Generator::addArgument(RankedTensorType type, DictionaryAttr attrs, Location l) {
  unsigned index = fn.getNumArguments();
  (void)fn.insertArgument(index, type, attrs, l);
  return fn.getArgument(index);
}

DictionaryAttr Generator::argAttrs(const ast::Stmt &s, RankedTensorType type, StringRef name,
                                   unsigned stacked) {
  bool isParam = s.kind == ast::Stmt::Kind::Param;
  // After a reported error in the sharding or initializer, go on as if it
  // were replicated / zeros, so uses of the name do not cascade into errors.
  auto shard = dyn_cast_or_null<ShardingAttr>(sharding(s, type));
  SmallVector<SmallVector<int16_t>> dims(stacked);
  if (shard)
    for (ArrayRef<int16_t> axes : shard.getDims())
      dims.push_back(SmallVector<int16_t>(axes));
  else
    dims.resize(stacked + type.getRank());
  Attribute init = isParam ? initializer(s) : Attribute();
  if (isParam && !init)
    init = InitAttr::get(&ctx, InitKind::zeros, F64(0), F64(0));
  SmallVector<NamedAttribute> attrs{
      b.getNamedAttr(attr::role, RoleAttr::get(&ctx, isParam ? Role::param : Role::input)),
      b.getNamedAttr(attr::name, b.getStringAttr(name)),
      b.getNamedAttr(attr::sharding, ShardingAttr::get(&ctx, meshName, dims))};
  if (init)
    attrs.push_back(b.getNamedAttr(attr::init, init));
  return b.getDictionaryAttr(attrs);
}

func::FuncOp Generator::emitModel(const ast::Model &model) {
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
    auto labelsType = cast<RankedTensorType>(labels.getType());
    Value perExample = CorrectOp::create(b, l, f32(labelsType.getShape()), logits, labels);
    auto all = llvm::to_vector(llvm::seq<int64_t>(0, labelsType.getRank()));
    results.push_back(ReduceSumOp::create(b, l, f32({}), perExample,
                                          b.getDenseI64ArrayAttr(all), UnitAttr()));
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
        for (auto [count, layer] : layerStack)
          shape.push_back(count);
        shape.append(type->getShape().begin(), type->getShape().end());
        arg = addArgument(f32(shape), argAttrs(s, *type, name, layerStack.size()), loc(s.pos));
        blockParams[name] = arg;
      }
      Value v = arg;
      for (auto [count, layer] : layerStack) {
        auto t = cast<RankedTensorType>(v.getType());
        v = LayerOp::create(b, loc(s.pos), f32(t.getShape().drop_front()), v, layer);
      }
      define(s.name, v, s.pos);
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
        if (!blk)
          error(s.expr->pos) << "'repeat' needs a block call, e.g. h = repeat L layer(x)";
        else if (count && *count < 1)
          error(s.count->pos) << "'repeat' needs a positive count, got " << *count;
        else if (count)
          v = callBlock(*blk, *c, qualified(s.name), *count);
      } else if (blk) {
        v = callBlock(*blk, *c, qualified(s.name), std::nullopt);
      } else {
        v = expr(*s.expr);
      }
      // `h = expr shard [...]` constrains h's layout (with_sharding_constraint).
      if (v && s.sharding) {
        auto type = cast<RankedTensorType>(v.getType());
        if (auto attr = dyn_cast_or_null<ShardingAttr>(sharding(s, type)))
          v = ShardingConstraintOp::create(b, loc(s.sharding->pos), type, v, attr);
      }
      if (v)
        define(s.name, v, s.pos);
      else
        poisoned.insert(s.name);
      break;
    }
    case ast::Stmt::Kind::Return:
      if (returnStmt) {
        error(s.pos).append(blockDepth ? "a block returns once" : "a model returns once")
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

Value Generator::callBlock(const ast::Block &blk, const ast::Call &c, StringRef prefix,
                           std::optional<int64_t> repeat) {
  SmallVector<Value> args;
  for (const ast::Arg &a : c.args) {
    Value v = a.key.empty() ? tensorArg(a, "block '" + blk.name + "'") : Value();
    if (!a.key.empty())
      error(a.pos) << "block '" << blk.name << "' takes tensor arguments";
    if (!v)
      return {};
    args.push_back(v);
  }
  if (args.size() != blk.args.size()) {
    error(c.pos).append("block '", blk.name, "' takes ", blk.args.size(), " argument",
                        blk.args.size() == 1 ? "" : "s", ", got ", args.size())
            .attachNote(loc(blk.pos))
        << "'" << blk.name << "' is declared here";
    return {};
  }
  if (repeat && args.size() != 1) {
    error(c.pos) << "'repeat' feeds a block's result back as its argument, so the block must "
                    "take one argument";
    return {};
  }
  if (blockDepth >= 16) {
    error(c.pos) << "blocks nest more than 16 deep (does '" << blk.name << "' call itself?)";
    return {};
  }
  // One expansion per layer, in a scope of its own (sizes stay visible).
  auto expand = [&](ArrayRef<Value> values) -> Value {
    llvm::StringMap<Symbol> outer = std::move(symbols);
    llvm::StringSet<> outerPoisoned = std::move(poisoned);
    symbols.clear();
    poisoned.clear();
    ++blockDepth;
    for (auto [name, v] : llvm::zip(blk.args, values))
      define(name, v, blk.pos);
    const ast::Stmt *returnStmt = nullptr;
    Value result = emitStatements(blk.body, prefix, returnStmt);
    if (!returnStmt)
      error(blk.pos) << "block '" << blk.name << "' has no 'return'";
    --blockDepth;
    symbols = std::move(outer);
    poisoned = std::move(outerPoisoned);
    return result;
  };
  if (!repeat)
    return expand(args);
  Value x = args[0];
  for (int64_t layer = 0; layer < *repeat && x; ++layer) {
    layerStack.push_back({*repeat, layer});
    Value next = expand({x});
    layerStack.pop_back();
    if (next && next.getType() != x.getType()) {
      error(c.pos) << "'repeat' needs block '" << blk.name << "' to return what it takes, but "
                   << formatType(x.getType()) << " became " << formatType(next.getType());
      return {};
    }
    x = next;
  }
  return x;
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
  auto lt = cast<RankedTensorType>(lhs.getType()), rt = cast<RankedTensorType>(rhs.getType());
  auto noteOperands = [&](InFlightDiagnostic &diag) {
    for (const ast::Expr *operand : std::initializer_list<const ast::Expr *>{e.operands[0].get(), operand})
      if (operand->kind == ast::Expr::Kind::Name)
        if (auto it = symbols.find(operand->name); it != symbols.end())
          diag.attachNote(loc(it->second.pos))
              << "'" << operand->name << "' is " << formatType(it->second.value.getType());
  };
  if (lt.getRank() < 2 || rt.getRank() != 2) {
    auto diag = error(e.pos) << "'@' needs a 2-D (or batched, [..., K]) lhs and a 2-D rhs, got "
                             << formatType(lt) << " @ " << formatType(rt);
    noteOperands(diag);
    return {};
  }
  int64_t k = lt.getShape().back(), k2 = rt.getShape()[transposed ? 1 : 0],
          n = rt.getShape()[transposed ? 0 : 1];
  if (k != k2) {
    auto diag = error(e.pos) << "shape mismatch in '@': " << formatType(lt) << " @ "
                             << (transposed ? "transpose(" : "") << formatType(rt)
                             << (transposed ? ")" : "") << " contracts " << k << " with " << k2;
    noteOperands(diag);
    return {};
  }
  SmallVector<int64_t> shape(lt.getShape().drop_back());
  shape.push_back(n);
  return MatmulOp::create(b, loc(e.pos), f32(shape), lhs, rhs, false, transposed);
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
  auto noteOperands = [&](InFlightDiagnostic &diag) {
    for (const auto &operand : e.operands)
      if (operand->kind == ast::Expr::Kind::Name)
        if (auto it = symbols.find(operand->name); it != symbols.end())
          diag.attachNote(loc(it->second.pos))
              << "'" << operand->name << "' is " << formatType(it->second.value.getType());
  };
  Location l = loc(e.pos);
  // Numpy broadcasting: align trailing dimensions; sizes equal or 1.
  int64_t rank = std::max(lt.getRank(), rt.getRank());
  SmallVector<int64_t> shape(rank);
  for (int64_t i = 0; i < rank; ++i) {
    int64_t li = i - (rank - lt.getRank()), ri = i - (rank - rt.getRank());
    int64_t a = li >= 0 ? lt.getShape()[li] : 1, c = ri >= 0 ? rt.getShape()[ri] : 1;
    if (a != c && a != 1 && c != 1) {
      auto diag = error(e.pos) << "shape mismatch in " << opName << ": " << formatType(lt)
                               << " and " << formatType(rt) << " do not broadcast";
      noteOperands(diag);
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

Value Generator::call(const ast::Call &c) {
  Location l = loc(c.pos);
  if (blocks.count(c.callee)) {
    error(c.pos) << "block '" << c.callee << "' is called as a whole statement: NAME = "
                 << c.callee << "(...) or NAME = repeat N " << c.callee << "(...)";
    return {};
  }
  // Named arguments each function accepts; the rest are tensors, in order.
  static const llvm::StringMap<SmallVector<StringRef>> namedArgs = {
      {"sum", {"axis", "keepdims"}},   {"mean", {"axis", "keepdims"}},
      {"layernorm", {"eps"}},          {"causal_attention", {"heads"}},
      {"dropout", {"rate"}}};
  SmallVector<Value> args;
  SmallVector<const ast::Expr *> argExprs;
  llvm::StringMap<const ast::Arg *> named;
  const ast::Value *shapeArg = nullptr; // reshape's / transpose's tuple
  for (const ast::Arg &a : c.args) {
    if (!a.key.empty()) {
      auto known = namedArgs.find(c.callee);
      if (known == namedArgs.end() || !llvm::is_contained(known->second, a.key)) {
        error(a.pos) << "'" << c.callee << "' has no argument named '" << a.key << "'";
        return {};
      }
      named[a.key] = &a;
      continue;
    }
    if ((c.callee == "reshape" || c.callee == "transpose") && !args.empty() && !shapeArg) {
      shapeArg = a.value.get();
      continue;
    }
    Value v = tensorArg(a, "'" + c.callee + "'");
    if (!v)
      return {};
    args.push_back(v);
    argExprs.push_back(a.value->expr.get());
  }
  auto arity = [&](size_t n) {
    if (args.size() == n)
      return true;
    error(c.pos) << "'" << c.callee << "' takes " << n << " tensor argument" << (n == 1 ? "" : "s")
                 << ", got " << args.size();
    return false;
  };
  auto f32Args = [&](size_t n) {
    if (!arity(n))
      return false;
    for (size_t i = 0; i < n; ++i)
      if (!requireF32(args[i], *argExprs[i], "'" + c.callee + "'"))
        return false;
    return true;
  };
  auto typeOf = [&](size_t i) { return cast<RankedTensorType>(args[i].getType()); };
  /// A named number (default when absent), or nullopt after an error.
  auto namedNumber = [&](StringRef key, double fallback) -> std::optional<double> {
    const ast::Arg *a = named.lookup(key);
    if (!a)
      return fallback;
    std::optional<double> v =
        a->value->kind == ast::Value::Kind::Expr ? constantValue(*a->value->expr) : std::nullopt;
    if (!v)
      error(a->pos) << "'" << key << "' must be a number (numbers, sizes, + - * / and sqrt)";
    return v;
  };
  /// Integer entries of a size or a tuple of sizes.
  auto sizesOf = [&](const ast::Value &v) -> std::optional<SmallVector<int64_t>> {
    SmallVector<const ast::Value *> items = itemsOf(v);
    SmallVector<int64_t> out;
    for (const ast::Value *item : items) {
      if (item->kind != ast::Value::Kind::Expr) {
        error(item->pos) << "expected a size";
        return std::nullopt;
      }
      std::optional<int64_t> n = sizeValue(*item->expr);
      if (!n)
        return std::nullopt;
      out.push_back(*n);
    }
    return out;
  };
  auto unary = [&](auto tag) -> Value {
    using OpTy = decltype(tag);
    if (!f32Args(1))
      return {};
    return OpTy::create(b, l, args[0].getType(), args[0]);
  };
  if (c.callee == "relu")
    return unary(ReluOp());
  if (c.callee == "exp")
    return unary(ExpOp());
  if (c.callee == "log")
    return unary(LogOp());
  if (c.callee == "tanh")
    return unary(TanhOp());
  if (c.callee == "sqrt")
    return unary(SqrtOp());
  if (c.callee == "gelu")
    return unary(GeluOp());
  if (c.callee == "softmax")
    return f32Args(1) && typeOf(0).getRank() >= 1 ? unary(SoftmaxOp()) : Value();
  if (c.callee == "sum" || c.callee == "mean")
    return reduction(c, args, argExprs, named);
  if (c.callee == "layernorm") {
    std::optional<double> eps = namedNumber("eps", 1e-5);
    if (!eps || !f32Args(3))
      return {};
    auto x = typeOf(0);
    if (x.getRank() < 1 || typeOf(1).getShape() != x.getShape().take_back() ||
        typeOf(2).getShape() != x.getShape().take_back()) {
      error(c.pos) << "layernorm(x, weight, bias) needs weight and bias shaped like x's last "
                      "dimension, got "
                   << formatType(x) << ", " << formatType(typeOf(1)) << ", "
                   << formatType(typeOf(2));
      return {};
    }
    auto rows = f32(x.getShape().drop_back());
    return LayerNormOp::create(b, l, x, rows, rows, args[0], args[1], args[2],
                               b.getF64FloatAttr(*eps))
        .getResult();
  }
  if (c.callee == "embedding") {
    if (!arity(2))
      return {};
    auto table = typeOf(0), ids = typeOf(1);
    if (table.getRank() != 2 || !table.getElementType().isF32() ||
        !ids.getElementType().isInteger(32)) {
      error(c.pos) << "embedding(table, ids) needs an f32 table [V, C] and i32 ids, got "
                   << formatType(table) << " and " << formatType(ids);
      return {};
    }
    SmallVector<int64_t> shape(ids.getShape());
    shape.push_back(table.getShape()[1]);
    return EmbeddingOp::create(b, l, f32(shape), args[0], args[1]);
  }
  if (c.callee == "causal_attention") {
    const ast::Arg *headsArg = named.lookup("heads");
    if (!headsArg) {
      error(c.pos) << "causal_attention(q, k, v, heads = H) needs the number of heads";
      return {};
    }
    std::optional<SmallVector<int64_t>> heads = sizesOf(*headsArg->value);
    if (!heads || !f32Args(3))
      return {};
    auto q = typeOf(0);
    if (q.getRank() != 3 || typeOf(1) != q || typeOf(2) != q) {
      error(c.pos) << "causal_attention needs q, k and v of one shape [B, T, C], got "
                   << formatType(q) << ", " << formatType(typeOf(1)) << ", "
                   << formatType(typeOf(2));
      return {};
    }
    int64_t h = heads->front();
    if (heads->size() != 1 || h < 1 || q.getShape()[2] % h != 0) {
      error(headsArg->pos) << "heads must divide the channels (" << q.getShape()[2] << ")";
      return {};
    }
    int64_t batch = q.getShape()[0], seq = q.getShape()[1];
    return CausalAttentionOp::create(b, l, q, f32({batch, h, seq, seq}), args[0], args[1],
                                     args[2], b.getI64IntegerAttr(h))
        .getResult();
  }
  if (c.callee == "reshape" || c.callee == "transpose") {
    if (!arity(1))
      return {};
    auto type = typeOf(0);
    SmallVector<int64_t> list;
    if (shapeArg) {
      std::optional<SmallVector<int64_t>> sizes = sizesOf(*shapeArg);
      if (!sizes)
        return {};
      list = *sizes;
    } else if (c.callee == "reshape") {
      error(c.pos) << "reshape(x, (D0, D1, ...)) needs the new shape";
      return {};
    } else if (type.getRank() == 2) {
      list = {1, 0};
    } else {
      error(c.pos) << "transpose(x) swaps the dims of a matrix; for " << formatType(type)
                   << " give the permutation: transpose(x, (0, 2, 1, 3))";
      return {};
    }
    if (c.callee == "reshape") {
      auto result = RankedTensorType::get(list, type.getElementType());
      if (llvm::any_of(list, [](int64_t d) { return d < 1; }) ||
          result.getNumElements() != type.getNumElements() ||
          !reshapeGroups(type.getShape(), list)) {
        error(c.pos) << "cannot reshape " << formatType(type) << " to "
                     << formatType(result)
                     << ": reshapes keep the element count and merge or split neighbouring "
                        "dimensions";
        return {};
      }
      return ReshapeOp::create(b, l, result, args[0]);
    }
    SmallVector<int64_t> shape;
    SmallVector<bool> seen(type.getRank(), false);
    for (int64_t p : list) {
      if (p < 0 || p >= type.getRank() || seen[p] || list.size() != (size_t)type.getRank()) {
        error(c.pos) << "the permutation must list each of the " << type.getRank()
                     << " dimensions once";
        return {};
      }
      seen[p] = true;
      shape.push_back(type.getShape()[p]);
    }
    if (!requireF32(args[0], *argExprs[0], "'transpose'"))
      return {};
    return TransposeOp::create(b, l, f32(shape), args[0], b.getDenseI64ArrayAttr(list));
  }
  if (c.callee == "dropout") {
    std::optional<double> rate = namedNumber("rate", 0.1);
    if (!rate || !f32Args(1))
      return {};
    if (*rate < 0 || *rate >= 1) {
      error(c.pos) << "dropout's rate must be in [0, 1), got " << *rate;
      return {};
    }
    if (*rate == 0)
      return args[0]; // the identity, at no cost
    if (!stepArg) {
      auto attrs = b.getDictionaryAttr(
          {b.getNamedAttr(attr::role, RoleAttr::get(&ctx, Role::step)),
           b.getNamedAttr(attr::name, b.getStringAttr("step")),
           b.getNamedAttr(attr::sharding, ShardingAttr::get(&ctx, meshName, {}))});
      stepArg = addArgument(f32({}), attrs, l);
    }
    return DropoutOp::create(b, l, args[0].getType(), args[0], stepArg,
                             b.getF64FloatAttr(*rate), b.getI64IntegerAttr(dropoutStreams++));
  }
  if (c.callee == "cross_entropy") {
    if (!arity(2))
      return {};
    auto logits = typeOf(0), labels = typeOf(1);
    if (logits.getRank() < 2 || !logits.getElementType().isF32() ||
        !labels.getElementType().isInteger(32) ||
        logits.getShape().drop_back() != labels.getShape()) {
      error(c.pos) << "cross_entropy needs f32 logits [..., C] and i32 labels [...], got "
                   << formatType(logits) << " and " << formatType(labels);
      return {};
    }
    crossEntropies.push_back({args[0], args[1]});
    Value perExample = CrossEntropyOp::create(b, l, f32(labels.getShape()), args[0], args[1]);
    auto all = llvm::to_vector(llvm::seq<int64_t>(0, labels.getRank()));
    Value sum = ReduceSumOp::create(b, l, f32({}), perExample, b.getDenseI64ArrayAttr(all),
                                    UnitAttr());
    return MulOp::create(b, l, f32({}), sum,
                         constant(1.0 / labels.getNumElements(), f32({}), l));
  }
  error(c.pos) << "unknown function '" << c.callee
               << "' (known: relu, gelu, exp, log, tanh, sqrt, softmax, sum, mean, layernorm, "
                  "embedding, causal_attention, reshape, transpose, dropout, cross_entropy, "
                  "and the blocks declared with 'block')";
  return {};
}

Value Generator::reduction(const ast::Call &c, ArrayRef<Value> args,
                           ArrayRef<const ast::Expr *> argExprs,
                           const llvm::StringMap<const ast::Arg *> &named) {
  Location l = loc(c.pos);
  bool keepDims = false;
  if (const ast::Arg *a = named.lookup("keepdims")) {
    const ast::Value &v = *a->value;
    bool isBool = v.kind == ast::Value::Kind::Expr && v.expr->kind == ast::Expr::Kind::Name &&
                  (v.expr->name == "true" || v.expr->name == "false");
    if (!isBool) {
      error(a->pos) << "keepdims is true or false";
      return {};
    }
    keepDims = v.expr->name == "true";
  }
  std::optional<SmallVector<int64_t>> axes;
  if (const ast::Arg *a = named.lookup("axis")) {
    axes.emplace();
    const ast::Value &v = *a->value;
    SmallVector<const ast::Value *> items = itemsOf(v);
    for (const ast::Value *item : items) {
      std::optional<double> n = number(*item);
      if (!n || *n != (int64_t)*n) {
        error(item->pos) << "axis must be an integer or a tuple of integers";
        return {};
      }
      axes->push_back((int64_t)*n);
    }
  }
  if (args.size() != 1) {
    error(c.pos) << "'" << c.callee << "' takes 1 tensor argument, got " << args.size();
    return {};
  }
  if (!requireF32(args[0], *argExprs[0], "'" + c.callee + "'"))
    return {};
  auto type = cast<RankedTensorType>(args[0].getType());
  SmallVector<int64_t> dims;
  if (!axes)
    dims = llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()));
  for (int64_t a : axes.value_or(SmallVector<int64_t>())) {
    int64_t d = a < 0 ? a + type.getRank() : a;
    if (d < 0 || d >= type.getRank() || llvm::is_contained(dims, d)) {
      error(c.pos) << "axis " << a << " is out of range or repeated for " << formatType(type);
      return {};
    }
    dims.push_back(d);
  }
  llvm::sort(dims);
  SmallVector<int64_t> shape;
  int64_t count = 1;
  for (auto [d, size] : llvm::enumerate(type.getShape())) {
    bool reduced = llvm::is_contained(dims, (int64_t)d);
    if (reduced)
      count *= size;
    if (!reduced || keepDims)
      shape.push_back(reduced ? 1 : size);
  }
  Value sum = ReduceSumOp::create(b, l, f32(shape), args[0], b.getDenseI64ArrayAttr(dims),
                                  keepDims ? b.getUnitAttr() : UnitAttr());
  if (c.callee == "sum")
    return sum;
  Value scale = broadcastTo(constant(1.0 / count, f32({}), l), shape, l);
  return MulOp::create(b, l, f32(shape), sum, scale);
}

//===----------------------------------------------------------------------===//
// Train section
//===----------------------------------------------------------------------===//

std::optional<double> Generator::number(const ast::Value &v) {
  if (v.kind != ast::Value::Kind::Expr)
    return std::nullopt;
  const ast::Expr *e = v.expr.get();
  double sign = 1;
  if (e->kind == ast::Expr::Kind::Neg) {
    sign = -1;
    e = e->operands[0].get();
  }
  if (e->kind != ast::Expr::Kind::Number)
    return std::nullopt;
  return sign * e->number;
}

DataAttr Generator::dataSource(const ast::DataSource &source) {
  const ast::Call &c = *source.call;
  SmallVector<Attribute> inputs, files;
  for (const ast::AxisRef &n : source.names) {
    if (!inputNames.contains(n.name))
      error(n.pos) << "'" << n.name << "' is not an input of the model";
    inputs.push_back(b.getStringAttr(n.name));
  }
  int64_t classes = 10, size = 1024;
  DataSourceKind kind;
  if (c.callee == "idx") {
    kind = DataSourceKind::idx;
    for (const ast::Arg &a : c.args) {
      if (!a.key.empty() || a.value->kind != ast::Value::Kind::String) {
        error(a.pos) << "idx(...) takes one file path (a string) per input";
        continue;
      }
      files.push_back(b.getStringAttr(a.value->string));
    }
    if (files.size() != source.names.size()) {
      error(c.pos) << "idx(...) has " << files.size() << " files for " << source.names.size()
                   << " inputs";
      return {};
    }
  } else if (c.callee == "synthetic") {
    kind = DataSourceKind::synthetic;
    for (const ast::Arg &a : c.args) {
      std::optional<double> n = number(*a.value);
      if ((a.key != "classes" && a.key != "size") || !n || *n < 1) {
        error(a.pos) << "synthetic(...) takes classes = N and size = N (positive)";
        continue;
      }
      (a.key == "classes" ? classes : size) = (int64_t)*n;
    }
  } else if (c.callee == "tokens") {
    kind = DataSourceKind::tokens;
    // llm.c token shards: windows of T + 1 tokens feed (ids, next-token targets).
    if (c.args.size() != 1 || !c.args[0].key.empty() ||
        c.args[0].value->kind != ast::Value::Kind::String) {
      error(c.pos) << "tokens(...) takes one file path (a string)";
      return {};
    }
    files.push_back(b.getStringAttr(c.args[0].value->string));
    auto inputType = [&](const ast::AxisRef &n) -> RankedTensorType {
      for (BlockArgument arg : fn.getArguments())
        if (argName(fn, arg.getArgNumber()) == n.name)
          return cast<RankedTensorType>(arg.getType());
      return {};
    };
    RankedTensorType first = source.names.size() == 2 ? inputType(source.names[0]) : nullptr;
    RankedTensorType second = source.names.size() == 2 ? inputType(source.names[1]) : nullptr;
    if (source.names.size() != 2 || !first || !second || first != second ||
        first.getRank() != 2 || !first.getElementType().isInteger(32)) {
      error(source.pos) << "tokens(...) feeds two i32 [B, T] inputs: the token ids and the "
                           "next-token targets (data idx, targets = tokens(\"train.bin\"))";
      return {};
    }
  } else {
    error(c.pos) << "unknown data source '" << c.callee << "' (known: idx, synthetic, tokens)";
    return {};
  }
  return DataAttr::getChecked([&] { return error(c.pos); }, &ctx, kind, b.getArrayAttr(inputs),
                              b.getArrayAttr(files), classes, size);
}

void Generator::emitTrain(ModuleOp module, const ast::Train &train) {
  DataAttr data, eval;
  for (const ast::DataSource &source : train.data) {
    DataAttr &slot = source.isEval ? eval : data;
    if (slot) {
      error(source.pos) << "a second '" << (source.isEval ? "eval" : "data") << "' source";
      continue;
    }
    slot = dataSource(source);
    if (!source.isEval) {
      llvm::StringSet<> fed;
      for (const ast::AxisRef &n : source.names)
        fed.insert(n.name);
      for (const auto &name : inputNames)
        if (!fed.contains(name.getKey()))
          error(source.pos) << "input '" << name.getKey() << "' gets no data from this source";
    }
  }
  if (!llvm::any_of(train.data, [](const ast::DataSource &d) { return !d.isEval; }))
    error(train.pos) << "the train section needs a 'data' source";

  int64_t steps = 100, logEvery = 10, evalEvery = 0, evalBatches = 0, seed = 0, warmup = 0,
          zero = 0;
  double minLr = 0;
  LrSchedule schedule = LrSchedule::constant;
  Precision precision = Precision::f32;
  OptimizerKind optimizer = OptimizerKind::sgd;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, momentum = 0;
  auto setInt = [&](const ast::Setting &s, int64_t min, int64_t &out) {
    std::optional<double> n = number(s.value);
    if (!n || *n != (int64_t)*n || *n < min)
      error(s.value.pos) << "'" << s.key << "' must be an integer >= " << min;
    else
      out = (int64_t)*n;
  };
  for (const ast::Setting &s : train.settings) {
    if (s.key == "steps") {
      setInt(s, 1, steps);
    } else if (s.key == "log_every") {
      setInt(s, 1, logEvery);
    } else if (s.key == "seed") {
      setInt(s, 0, seed);
    } else if (s.key == "eval_every") {
      setInt(s, 0, evalEvery);
    } else if (s.key == "eval_batches") {
      setInt(s, 0, evalBatches);
    } else if (s.key == "zero") {
      std::optional<double> n = number(s.value);
      if (!n || (*n != 0 && *n != 1 && *n != 2 && *n != 3))
        error(s.value.pos) << "'zero' is the ZeRO stage: 0, 1, 2 or 3";
      else
        zero = (int64_t)*n;
    } else if (s.key == "precision") {
      bool isName = s.value.kind == ast::Value::Kind::Expr &&
                    s.value.expr->kind == ast::Expr::Kind::Name;
      if (!isName || (s.value.expr->name != "f32" && s.value.expr->name != "bf16"))
        error(s.value.pos) << "'precision' is f32 or bf16 (bf16: GEMMs multiply in bf16 on "
                              "the CUDA target, with f32 master weights and optimizer state)";
      else
        precision = *symbolizePrecision(s.value.expr->name);
    } else if (s.key == "optimizer" || s.key == "schedule") {
      if (s.value.kind != ast::Value::Kind::Expr || s.value.expr->kind != ast::Expr::Kind::Call) {
        error(s.value.pos) << "'" << s.key << "' must be a call such as "
                           << (s.key == "optimizer" ? "adamw(lr = 1e-3)"
                                                    : "warmup_cosine(warmup = 100)");
        continue;
      }
      const ast::Call &c = *s.value.expr->call;
      bool isOptimizer = s.key == "optimizer";
      static const llvm::StringMap<SmallVector<StringRef>> known = {
          {"adamw", {"lr", "betas", "eps", "weight_decay"}},
          {"sgd", {"lr", "momentum", "weight_decay"}},
          {"constant", {}},
          {"warmup_cosine", {"warmup", "min_lr"}},
          {"cosine", {"min_lr"}},
          {"warmup", {"warmup"}}};
      std::optional<OptimizerKind> optimizerKind = symbolizeOptimizerKind(c.callee);
      std::optional<LrSchedule> scheduleKind = symbolizeLrSchedule(c.callee);
      if (isOptimizer ? !optimizerKind : !scheduleKind) {
        error(c.pos) << "unknown " << s.key << " '" << c.callee << "' (known: "
                     << (isOptimizer ? "adamw, sgd" : "constant, warmup, cosine, warmup_cosine")
                     << ")";
        continue;
      }
      if (isOptimizer)
        optimizer = *optimizerKind;
      else
        schedule = *scheduleKind;
      for (const ast::Arg &a : c.args) {
        const SmallVector<StringRef> &params = known.lookup(c.callee);
        if (a.key.empty() || !llvm::is_contained(params, a.key)) {
          error(a.pos) << "'" << c.callee << "' takes named arguments: "
                       << llvm::join(params, ", ");
          continue;
        }
        if (a.key == "betas") {
          if (a.value->kind != ast::Value::Kind::Tuple || a.value->tuple.size() != 2 ||
              !number(a.value->tuple[0]) || !number(a.value->tuple[1])) {
            error(a.pos) << "betas must be a pair of numbers, e.g. (0.9, 0.999)";
            continue;
          }
          beta1 = *number(a.value->tuple[0]);
          beta2 = *number(a.value->tuple[1]);
          continue;
        }
        std::optional<double> n = number(*a.value);
        if (!n || *n < 0) {
          error(a.pos) << "'" << a.key << "' must be a non-negative number";
          continue;
        }
        llvm::StringMap<double *> reals = {{"lr", &lr},
                                           {"eps", &eps},
                                           {"weight_decay", &weightDecay},
                                           {"momentum", &momentum},
                                           {"min_lr", &minLr}};
        if (a.key == "warmup")
          warmup = (int64_t)*n;
        else
          *reals.lookup(a.key) = *n;
      }
    } else {
      error(s.pos) << "unknown train setting '" << s.key
                   << "' (known: data, eval, optimizer, schedule, steps, log_every, "
                      "eval_every, eval_batches, seed, zero, precision)";
    }
  }
  if (hadError)
    return;
  auto optimizerAttr =
      OptimizerAttr::getChecked([&] { return error(train.pos); }, &ctx, optimizer, F64(lr),
                                F64(beta1), F64(beta2), F64(eps), F64(weightDecay), F64(momentum));
  auto trainAttr = TrainAttr::getChecked([&] { return error(train.pos); }, &ctx, data, eval,
                                         steps, logEvery, evalEvery, evalBatches, seed, schedule,
                                         warmup, F64(minLr), zero, precision);
  if (!optimizerAttr || !trainAttr)
    return;
  module->setAttr(attr::optimizer, optimizerAttr);
  module->setAttr(attr::train, trainAttr);
}

OwningOpRef<ModuleOp> Generator::run(const ast::Program &program) {
  const ast::Train *train = nullptr;
  for (const ast::Train &t : program.trains) {
    if (train)
      error(t.pos) << "only one train section per file";
    train = &t;
  }
  llvm::StringMap<const ast::Model *> models;
  for (const ast::Model &m : program.models)
    if (!models.try_emplace(m.name, &m).second)
      error(m.pos) << "model '" << m.name << "' is declared twice";
  const ast::Model *model = nullptr;
  if (train) {
    model = models.lookup(train->model);
    if (!model)
      error(train->modelPos) << "unknown model '" << train->model << "'";
  } else if (program.models.size() == 1) {
    model = &program.models.front();
  } else {
    error(ast::Pos{1, 1}) << (program.models.empty() ? "no model in this file"
                                                      : "several models and no train section");
  }
  if (!model || !selectMesh(program, train) || !resolveSizes(*model))
    return nullptr;

  OwningOpRef<ModuleOp> module = ModuleOp::create(loc(model->pos));
  b.setInsertionPointToEnd(module->getBody());
  shard::GridOp::create(b, loc(mesh ? mesh->pos : model->pos), meshName, meshShape);
  SmallVector<Attribute> axisNames;
  if (mesh)
    for (const ast::MeshAxis &a : mesh->axes)
      axisNames.push_back(b.getStringAttr(a.name));
  else
    axisNames.push_back(b.getStringAttr("devices"));
  SmallVector<StringAttr> names;
  for (Attribute a : axisNames)
    names.push_back(cast<StringAttr>(a));
  (*module)->setAttr(attr::mesh, MeshAttr::get(&ctx, FlatSymbolRefAttr::get(&ctx, meshName),
                                                names, meshShape));
  OpBuilder::InsertionGuard guard(b);
  for (const ast::Block &blk : program.blocks) {
    auto [it, fresh] = blocks.try_emplace(blk.name, &blk);
    if (!fresh)
      error(blk.pos).append("block '", blk.name, "' is declared twice")
              .attachNote(loc(it->second->pos))
          << "first declared here";
  }
  emitModel(*model);
  b.setInsertionPointAfter(fn);
  (*module)->setAttr(attr::model, FlatSymbolRefAttr::get(&ctx, model->name));
  if (train)
    emitTrain(*module, *train);
  if (hadError)
    return nullptr;
  return module;
}

} // namespace

OwningOpRef<ModuleOp> dtl::mlirGen(MLIRContext &context, const ast::Program &program,
                                   StringRef filename, const FrontendOptions &options) {
  return Generator(context, filename, options).run(program);
}
