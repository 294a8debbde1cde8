//===- Pipeline.cpp - the passes from frontend IR to the execution stage --===//

#include "passes/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace dtl;

void dtl::buildPipeline(OpPassManager &pm, const PipelineOptions &options) {
  if (options.stage == Stage::Dtl)
    return;
  // The frontend repeats subexpressions as written (`x @ w` twice is two
  // GEMMs); CSE merges them before the backward pass doubles the cost.
  pm.addPass(createCSEPass());
  pm.addPass(createInterleaveSplits());
  pm.addPass(createAutodiff());
  pm.addPass(createCSEPass());
  if (options.stage == Stage::Grad)
    return;
  pm.addPass(createOptimizer());
  pm.addPass(createPropagateSharding());
  pm.addPass(createPartition(PartitionOptions{options.annotate}));
  pm.addPass(createSchedulePipeline());
  pm.addPass(createCheckSchedule());
  if (options.stage == Stage::Partitioned)
    return;
  pm.addPass(createFuseEpilogues());
  pm.addPass(createMixedPrecision());
  pm.addPass(createFuseElementwise());
  pm.addPass(createScheduleCollectives(
      ScheduleCollectivesOptions{/*overlap=*/options.target == Target::cuda}));
  pm.addPass(createMarkInPlace());
  pm.addPass(createPlanBuffers(PlanBuffersOptions{stringifyTarget(options.target).str()}));
}

/// The model function's own repeats (nested ones follow their body).
static SmallVector<RepeatOp> modelRepeats(ModuleOp module) {
  SmallVector<RepeatOp> repeats;
  auto model = module->getAttrOfType<FlatSymbolRefAttr>(attr::model);
  if (auto fn = model ? module.lookupSymbol<func::FuncOp>(model.getValue()) : func::FuncOp())
    for (auto repeat : fn.getBody().front().getOps<RepeatOp>())
      repeats.push_back(repeat);
  return repeats;
}

LogicalResult dtl::fitMemoryLimit(ModuleOp module, const PipelineOptions &options) {
  auto train = module->getAttrOfType<TrainAttr>(attr::train);
  int64_t limit = train ? train.getMemoryLimit() : 0;
  if (limit == 0)
    return success();
  int64_t realBytes = train.getPrecision() == Precision::f64 ? 8 : 4;
  // Never less than the user wrote.
  auto atLeast = [](RepeatOp repeat, Recompute level) {
    return Recompute(std::max(int(repeat.getRecompute().value_or(Recompute::none)), int(level)));
  };
  int64_t smallest = 0;
  for (Recompute level : {Recompute::none, Recompute::cheap, Recompute::all}) {
    OwningOpRef<ModuleOp> trial = module.clone();
    for (RepeatOp repeat : modelRepeats(*trial))
      repeat.setRecomputeAttr(RecomputeAttr::get(module.getContext(), atLeast(repeat, level)));
    PassManager pm(module.getContext());
    PipelineOptions exec = options;
    exec.stage = Stage::Exec;
    buildPipeline(pm, exec);
    {
      // A program the pipeline rejects is rejected again, with its
      // diagnostics, when it is compiled for real.
      ScopedDiagnosticHandler quiet(module.getContext(), [](Diagnostic &) { return success(); });
      if (failed(pm.run(*trial)))
        return success();
    }
    auto step = trial->lookupSymbol<func::FuncOp>("train_step");
    int64_t bytes = step ? plannedStepBytes(step, realBytes) : 0;
    smallest = smallest == 0 ? bytes : std::min(smallest, bytes);
    if (bytes <= limit) {
      for (RepeatOp repeat : modelRepeats(module))
        if (atLeast(repeat, level) != Recompute::none)
          repeat.setRecomputeAttr(RecomputeAttr::get(module.getContext(), atLeast(repeat, level)));
      return success();
    }
  }
  return module.emitError("the step needs ")
         << formatBytes(double(smallest))
         << " per rank with every repeat recomputed, over memory_limit ("
         << formatBytes(double(limit))
         << "); use more ranks, a smaller batch with `accumulate`, or raise the "
         << "limit";
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
