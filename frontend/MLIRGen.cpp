//===- MLIRGen.cpp - AST -> dtl dialect: the program ----------------------===//
//
// Chooses the model and mesh, emits the module (the mesh, the model function,
// the contract) and reports errors at their `file:line:col`. The pieces are
// in Declarations.cpp, Statements.cpp, Builtins.cpp and TrainSection.cpp.
//
//===----------------------------------------------------------------------===//

#include "frontend/Generator.h"

#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace dtl;

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
  SmallVector<StringAttr> names;
  if (mesh)
    for (const ast::MeshAxis &a : mesh->axes)
      names.push_back(b.getStringAttr(a.name));
  else
    names.push_back(b.getStringAttr("devices"));
  (*module)->setAttr(attr::mesh,
                     MeshAttr::get(&ctx, FlatSymbolRefAttr::get(&ctx, meshName), names, meshShape));
  OpBuilder::InsertionGuard guard(b);
  for (const ast::Block &blk : program.blocks) {
    auto [it, fresh] = blocks.try_emplace(blk.name, &blk);
    if (!fresh)
      error(blk.pos)
              .append("block '", blk.name, "' is declared twice")
              .attachNote(loc(it->second->pos))
          << "first declared here";
  }
  if (!emitModel(*model))
    return nullptr;
  balanceStages();
  markInputBounds();
  b.setInsertionPointAfter(fn);
  (*module)->setAttr(attr::model, FlatSymbolRefAttr::get(&ctx, model->name));
  if (train)
    emitTrain(*module, *train);
  if (!hadError)
    checkTensorSizes(*module);
  if (hadError)
    return nullptr;
  return module;
}

/// Each i32 input that labels a cross-entropy or indexes an embedding table
/// gets `dtl.bound`, so the runtime checks its data when it loads it; one
/// that only labels classes also gets `dtl.ignorable` (negative: ignored).
void Generator::markInputBounds() {
  llvm::DenseMap<BlockArgument, int64_t> bounds;
  llvm::DenseSet<BlockArgument> indexes;
  auto note = [&](Value v, int64_t bound, bool isIndex = false) {
    while (Operation *def = v.getDefiningOp()) {
      if (!isa<ReshapeOp, ShardingConstraintOp>(def))
        return;
      v = def->getOperand(0);
    }
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || arg.getOwner() != &fn.getBody().front())
      return;
    auto [it, fresh] = bounds.try_emplace(arg, bound);
    if (!fresh)
      it->second = std::min(it->second, bound);
    if (isIndex)
      indexes.insert(arg);
  };
  fn.walk([&](Operation *op) {
    auto classes = [](Value logits) {
      return cast<RankedTensorType>(logits.getType()).getShape().back();
    };
    if (auto ce = dyn_cast<CrossEntropyOp>(op))
      note(ce.getLabels(), classes(ce.getLogits()));
    else if (auto correct = dyn_cast<CorrectOp>(op))
      note(correct.getLabels(), classes(correct.getLogits()));
    else if (auto lookup = dyn_cast<EmbeddingOp>(op))
      note(lookup.getIndices(), cast<RankedTensorType>(lookup.getTable().getType()).getShape()[0],
           /*isIndex=*/true);
  });
  for (auto [arg, bound] : bounds) {
    if (argRole(fn, arg.getArgNumber()) != Role::input)
      continue;
    fn.setArgAttr(arg.getArgNumber(), attr::bound, b.getI64IntegerAttr(bound));
    if (!indexes.contains(arg))
      fn.setArgAttr(arg.getArgNumber(), attr::ignorable, b.getUnitAttr());
  }
}

/// Every tensor's byte size fits dtlc's limit (and so 64 bits): sizes are
/// multiplied everywhere downstream (buffer plans, --explain, the runtime)
/// without further checks.
void Generator::checkTensorSizes(ModuleOp module) {
  auto tooBig = [&](Type type, Location where) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor)
      return false;
    int64_t bytes = std::max<unsigned>(tensor.getElementTypeBitWidth(), 8) / 8;
    for (int64_t d : tensor.getShape())
      if (llvm::MulOverflow(bytes, d, bytes) || uint64_t(bytes) > kMaxTensorBytes) {
        mlir::emitError(where) << formatType(tensor) << " is beyond dtlc's limit of 2^"
                               << llvm::Log2_64(kMaxTensorBytes) << " bytes per tensor";
        hadError = true;
        return true;
      }
    return false;
  };
  module.walk([&](Operation *op) {
    if (auto fn = dyn_cast<func::FuncOp>(op)) {
      for (BlockArgument arg : fn.getArguments())
        if (tooBig(arg.getType(), arg.getLoc()))
          return WalkResult::interrupt();
      return WalkResult::advance();
    }
    for (Value result : op->getResults())
      if (tooBig(result.getType(), op->getLoc()))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
}

OwningOpRef<ModuleOp> dtl::mlirGen(MLIRContext &context, const ast::Program &program,
                                   StringRef filename, const FrontendOptions &options) {
  return Generator(context, filename, options).run(program);
}
