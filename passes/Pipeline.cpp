//===- Pipeline.cpp - the pass pipeline from frontend IR to per-rank IR ---===//

#include "passes/Passes.h"

#include "mlir/Transforms/Passes.h"

using namespace mlir;

void dtl::buildPipeline(OpPassManager &pm, Stage stage, bool annotateLayouts) {
  if (stage == Stage::Dtl)
    return;
  // The frontend repeats subexpressions as written (`x @ w` twice is two
  // GEMMs); CSE merges them before the backward pass doubles the cost.
  pm.addPass(createCSEPass());
  pm.addPass(createAutodiff());
  pm.addPass(createCSEPass());
  if (stage == Stage::Grad)
    return;
  pm.addPass(createOptimizer());
  pm.addPass(createPropagateSharding());
  pm.addPass(createPartition(PartitionOptions{annotateLayouts}));
  pm.addPass(createFuseEpilogues());
}
