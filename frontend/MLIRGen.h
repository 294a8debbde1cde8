//===- MLIRGen.h - AST -> dtl dialect, with the semantic checks -*- C++ -*-===//

#ifndef DTL_FRONTEND_MLIRGEN_H
#define DTL_FRONTEND_MLIRGEN_H

#include "dialects/dtl/DtlOps.h" // Precision
#include "frontend/AST.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <map>
#include <optional>

namespace dtl {

struct FrontendOptions {
  std::map<std::string, int64_t> sizes;     ///< -D NAME=VALUE
  std::map<std::string, int64_t> meshSizes; ///< --mesh dp=4,tp=2
  /// --precision: replaces the train section's `precision`; a
  /// `reduce_precision = bf16` it leaves without bf16 storage is dropped
  /// with a warning.
  std::optional<Precision> precision;
};

/// Emits the module for `program` (global view: one model function, its
/// mesh, the train configuration as attributes), or null after reporting
/// errors at their `file:line:col`.
mlir::OwningOpRef<mlir::ModuleOp> mlirGen(mlir::MLIRContext &context, const ast::Program &program,
                                          llvm::StringRef filename, const FrontendOptions &options);

} // namespace dtl

#endif // DTL_FRONTEND_MLIRGEN_H
