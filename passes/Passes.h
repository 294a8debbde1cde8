//===- Passes.h - dtl passes and the compilation pipeline -------*- C++ -*-===//

#ifndef DTL_PASSES_PASSES_H
#define DTL_PASSES_PASSES_H

#include "dialects/dtl/Layout.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace dtl {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// The stages a user can stop after (`dtlc --emit=`).
enum class Stage { Dtl, Grad, Partitioned, Exec };

struct PipelineOptions {
  Stage stage = Stage::Exec;
  /// Where collectives are awaited and buffers planned for.
  Target target = Target::cpu;
  /// Partitioned ops keep their layouts (for --explain).
  bool annotate = false;
};

/// Adds the passes that take a frontend module to `options.stage`.
void buildPipeline(mlir::OpPassManager &pm, const PipelineOptions &options);

/// With the train section's `memory_limit`, gives the model's repeats the
/// least recomputation (none, then `cheap`, then `all`; never less than the
/// user wrote) whose planned step fits it, trying each on a copy of
/// `module` through the pipeline for `options.target`. When none fits,
/// reports the smallest figure reachable and fails.
mlir::LogicalResult fitMemoryLimit(mlir::ModuleOp module, const PipelineOptions &options);

/// The gradient an optimizer update reads, or null for another op. ZeRO's
/// layouts are storage: the gradient's layout is decided by how it is
/// computed, the update's by the param and state, and the partitioner
/// reshards the gradient between the two.
inline mlir::Value updatedGradient(mlir::Operation *op) {
  if (auto adamw = llvm::dyn_cast<AdamwUpdateOp>(op))
    return adamw.getGrad();
  if (auto sgd = llvm::dyn_cast<SgdUpdateOp>(op))
    return sgd.getGrad();
  return {};
}

/// Registers `dtl-pipeline` (buildPipeline, with stage, target and annotate
/// options) for dtl-opt and dtlc's --pass-pipeline.
void registerPipeline();

} // namespace dtl

#endif // DTL_PASSES_PASSES_H
