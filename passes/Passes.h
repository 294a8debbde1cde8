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
enum class Stage { Dtl, Grad, Partitioned };

/// Adds the passes that take a frontend module to `stage`. With
/// `annotateLayouts`, partitioned ops keep their layouts (for --explain).
void buildPipeline(mlir::OpPassManager &pm, Stage stage, bool annotateLayouts = false);

} // namespace dtl

#endif // DTL_PASSES_PASSES_H
