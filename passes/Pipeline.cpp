//===- Pipeline.cpp - the passes from frontend IR to the execution stage --===//

#include "passes/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void dtl::buildPipeline(OpPassManager &pm, const PipelineOptions &options) {
  if (options.stage == Stage::Dtl)
    return;
  // The frontend repeats subexpressions as written (`x @ w` twice is two
  // GEMMs); CSE merges them before the backward pass doubles the cost.
  pm.addPass(createCSEPass());
  pm.addPass(createAutodiff());
  pm.addPass(createCSEPass());
  if (options.stage == Stage::Grad)
    return;
  pm.addPass(createOptimizer());
  pm.addPass(createPropagateSharding());
  pm.addPass(createPartition(PartitionOptions{options.annotate}));
  if (options.stage == Stage::Partitioned)
    return;
  pm.addPass(createFuseEpilogues());
  pm.addPass(createFuseElementwise());
  pm.addPass(createScheduleCollectives(
      ScheduleCollectivesOptions{/*overlap=*/options.target == Target::cuda}));
  pm.addPass(createMarkInPlace());
  pm.addPass(createPlanBuffers(PlanBuffersOptions{stringifyTarget(options.target).str()}));
}

namespace {
struct PipelineCLOptions : PassPipelineOptions<PipelineCLOptions> {
  Option<std::string> stage{*this, "stage", llvm::cl::desc("dtl, grad, partitioned or exec"),
                            llvm::cl::init("exec")};
  Option<std::string> target{*this, "target", llvm::cl::desc("cpu or cuda"), llvm::cl::init("cpu")};
  Option<bool> annotate{*this, "annotate",
                        llvm::cl::desc("Keep every partitioned op's layout (for --explain)"),
                        llvm::cl::init(false)};
};
} // namespace

void dtl::registerPipeline() {
  PassPipelineRegistration<PipelineCLOptions>(
      "dtl-pipeline", "From the frontend's module to a stage (default: the execution stage)",
      [](OpPassManager &pm, const PipelineCLOptions &cl) {
        PipelineOptions options;
        options.stage = llvm::StringSwitch<Stage>(cl.stage)
                            .Case("dtl", Stage::Dtl)
                            .Case("grad", Stage::Grad)
                            .Case("partitioned", Stage::Partitioned)
                            .Default(Stage::Exec);
        options.target = symbolizeTarget(cl.target).value_or(Target::cpu);
        options.annotate = cl.annotate;
        buildPipeline(pm, options);
      });
}
