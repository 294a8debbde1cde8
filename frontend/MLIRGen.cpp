//===- MLIRGen.cpp - AST -> dtl dialect: the program ----------------------===//
//
// Chooses the model and mesh, emits the module (the mesh, the model function,
// the contract) and reports errors at their `file:line:col`. The pieces are
// in Declarations.cpp, Statements.cpp, Builtins.cpp and TrainSection.cpp.
//
//===----------------------------------------------------------------------===//

#include "frontend/Generator.h"

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
  emitModel(*model);
  b.setInsertionPointAfter(fn);
  (*module)->setAttr(attr::model, FlatSymbolRefAttr::get(&ctx, model->name));
  if (train)
    emitTrain(*module, *train);
  if (hadError)
    return nullptr;
  return module;
}

OwningOpRef<ModuleOp> dtl::mlirGen(MLIRContext &context, const ast::Program &program,
                                   StringRef filename, const FrontendOptions &options) {
  return Generator(context, filename, options).run(program);
}
