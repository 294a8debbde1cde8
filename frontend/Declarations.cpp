//===- Declarations.cpp - mesh, sizes, params, inputs, shardings ----------===//

#include "frontend/Generator.h"

#include <cmath>

using namespace mlir;
using namespace dtl;

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
    error(t.pos) << t.dtype
                 << " is not a tensor type: declare f32 and set `precision = bf16` in the train "
                    "section (bf16 storage with f32 master weights)";
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

ShardingAttr Generator::sharding(const ast::Stmt &decl, RankedTensorType type) {
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
                  << "dimension " << d << " of '" << decl.name << "' (size " << type.getShape()[d]
                  << ") is not divisible by " << span << ", the number of devices it is split over";
      for (const ast::AxisRef &ref : axes)
        for (auto [i, a] : llvm::enumerate(mesh->axes))
          if (a.name == ref.name)
            diag.attachNote(loc(a.pos)) << "mesh axis '" << a.name << "' has size " << meshShape[i]
                                        << (meshShape[i] != a.size ? " (set by --mesh)" : "");
      ok = false;
    }
  }
  return ok ? ShardingAttr::get(&ctx, meshName, dims) : ShardingAttr();
}

// nanoGPT's and llm.c's rule: matrices and embeddings decay, biases and
// layernorm weights do not; a block's param counts by its own rank, not
// that of the [L, ...] stack a repeat makes of it.
bool Generator::decays(const ast::Stmt &decl, RankedTensorType type) {
  if (decl.decay.empty())
    return type.getRank() >= 2;
  if (decl.decay != "true" && decl.decay != "false")
    error(decl.decayPos) << "expected 'true' or 'false' after 'decay', got '" << decl.decay << "'";
  return decl.decay == "true";
}

InitAttr Generator::initializer(const ast::Stmt &decl) {
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
  ShardingAttr shard = sharding(s, type);
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
  if (isParam)
    attrs.push_back(b.getNamedAttr(attr::decay, b.getBoolAttr(decays(s, type))));
  return b.getDictionaryAttr(attrs);
}

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

std::optional<int64_t> Generator::integer(const ast::Value &v) {
  // Whole numbers a double holds exactly (converting a larger one to
  // int64_t is undefined).
  std::optional<double> n = number(v);
  if (!n || *n != std::trunc(*n) || std::abs(*n) > 9007199254740992.0)
    return std::nullopt;
  return int64_t(*n);
}
