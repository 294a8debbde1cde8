//===- Fusion.h - elementwise chains as one loop or kernel -------*- C++ -*-===//
//
// Both code generators compute a chain of elementwise ops in one loop (CPU)
// or one kernel (CUDA): an elementwise op whose only use is a later
// elementwise op is computed inside that op's loop, in a register. This
// is a codegen decision over the partitioned function (it changes no IR),
// shared so that both targets and --explain agree on the buffers.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_CODEGEN_FUSION_H
#define DTL_CODEGEN_FUSION_H

#include "codegen/BufferPlan.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>
#include <string>

namespace dtl {

/// An elementwise op's value as C++ over `$k` (operand k at this element),
/// or nothing for other ops. gelu's math comes from `mathNamespace`
/// ("dtlrt" on the host, "dtlrt::cuda" on the GPU).
std::optional<std::string> elementwiseBody(mlir::Operation *op, llvm::StringRef mathNamespace);

inline bool isElementwise(mlir::Operation *op) { return elementwiseBody(op, "").has_value(); }

/// The elementwise ops computed inside a later op's loop (Schedule::fusedInto):
/// those whose result has one use, by an elementwise op of the same block,
/// with no in-place optimizer update in between (it could overwrite an
/// operand the fused op reads late).
Schedule fuseElementwise(mlir::func::FuncOp fn);

/// The C++ expression of `root` with the ops fused into it inlined; every
/// other operand (a leaf) is written as `leaf(value)`.
std::string fusedExpression(mlir::Operation *root, const Schedule &schedule,
                            llvm::StringRef mathNamespace,
                            llvm::function_ref<std::string(mlir::Value)> leaf);

} // namespace dtl

#endif // DTL_CODEGEN_FUSION_H
