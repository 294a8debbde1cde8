//===- Pipeline.cpp - the pass pipeline from frontend IR to per-rank IR ---===//

#include "passes/Passes.h"

using namespace mlir;

void dtl::buildPipeline(OpPassManager &pm, Stage stage) {
  if (stage == Stage::Dtl)
    return;
  pm.addPass(createAutodiff());
  if (stage == Stage::Grad)
    return;
  pm.addPass(createOptimizer());
  pm.addPass(createPropagateSharding());
  pm.addPass(createPartition());
}

shard::GridOp dtl::getMesh(ModuleOp module) {
  auto grids = module.getOps<shard::GridOp>();
  return grids.empty() ? shard::GridOp() : *grids.begin();
}
