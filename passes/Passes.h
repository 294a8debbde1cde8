//===- Passes.h - dtl passes and the compilation pipeline -------*- C++ -*-===//

#ifndef DTL_PASSES_PASSES_H
#define DTL_PASSES_PASSES_H

#include "dialects/dtl/DtlOps.h"
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

/// Attribute names shared by the frontend, the passes and codegen.
namespace attr {
inline constexpr llvm::StringLiteral model = "dtl.model";         // module: @model
inline constexpr llvm::StringLiteral train = "dtl.train";         // module: train config
inline constexpr llvm::StringLiteral optimizer = "dtl.optimizer"; // module: optimizer config
inline constexpr llvm::StringLiteral role = "dtl.role";           // arg/result
inline constexpr llvm::StringLiteral name = "dtl.name";           // arg/result
inline constexpr llvm::StringLiteral init = "dtl.init";           // param arg
inline constexpr llvm::StringLiteral sharding = "dtl.sharding";   // arg/result
inline constexpr llvm::StringLiteral shardings = "dtl.shardings"; // op results
inline constexpr llvm::StringLiteral globalType = "dtl.global_type"; // partitioned arg
} // namespace attr

/// The mesh of a module: its single `shard.grid`.
mlir::shard::GridOp getMesh(mlir::ModuleOp module);

} // namespace dtl

#endif // DTL_PASSES_PASSES_H
