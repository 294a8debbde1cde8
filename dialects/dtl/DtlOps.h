//===- DtlOps.h - the dtl dialect, its attributes and ops -------*- C++ -*-===//

#ifndef DTL_DIALECT_DTLOPS_H
#define DTL_DIALECT_DTLOPS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/bit.h"

namespace dtl {
/// How an op's loop behaves when it is split over mesh axes.
enum class LoopKind {
  Parallel, ///< splitting it splits the work and the results
  Sum,      ///< a sum reduction: splitting it leaves partial sums
  Whole,    ///< must not be split (e.g. a softmax's class dimension)
  /// A reduction that is not a sum (a cross-entropy's log-sum-exp over the
  /// classes): split, each rank reduces its block and dtl-partition combines
  /// the ranks' statistics, which are far smaller than the operand.
  Combined,
};

/// What one execution of an op costs (CostOpInterface).
struct OpCost {
  double matmulFlops = 0; ///< done by matrix products (GEMMs)
  double otherFlops = 0;  ///< the rest
  double bytes = 0;       ///< read and written
  double flops() const { return matmulFlops + otherFlops; }
  OpCost &operator+=(const OpCost &other) {
    matmulFlops += other.matmulFlops;
    otherFlops += other.otherFlops;
    bytes += other.bytes;
    return *this;
  }
};

/// One operation per element of the largest result; every tensor operand
/// read and result written once (the interface's default).
OpCost elementwiseCost(mlir::Operation *op, int64_t realBytes);

/// Bytes of a tensor of `type` with `realBytes` per f32 real (i32: 4, bf16: 2).
int64_t tensorBytes(mlir::Type type, int64_t realBytes);

/// Bytes as --explain prints them: `512 B`, `21.9 MiB`, `28.8 GiB`.
std::string formatBytes(double bytes);

/// What one rank holds for `step` at the execution stage (after
/// dtl-plan-buffers): its arguments, the results it does not write in place,
/// and its arena; reals of `realBytes` each.
int64_t plannedStepBytes(mlir::func::FuncOp step, int64_t realBytes);

/// A tensor type as the user writes it: `f32[4, 3]`.
std::string formatType(mlir::Type type);

/// The elementwise sharding rule (the interface's default).
llvm::SmallVector<LoopKind> elementwiseLoopKinds(mlir::Operation *op);
llvm::SmallVector<mlir::AffineMap> elementwiseIndexingMaps(mlir::Operation *op);

/// One group of a reshape: input dims [inBegin, inEnd) become result dims
/// [outBegin, outEnd), one side holding a single dim (a merge or a split).
struct ReshapeGroup {
  int64_t inBegin, inEnd, outBegin, outEnd;
};
/// The groups of a reshape from `in` to `out`, or nothing when it is not a
/// sequence of merges and splits (e.g. [6, 4] -> [4, 6]).
std::optional<llvm::SmallVector<ReshapeGroup>> reshapeGroups(llvm::ArrayRef<int64_t> in,
                                                             llvm::ArrayRef<int64_t> out);
/// How an attribute stores a double (doubles have no llvm::hash_value).
struct F64 {
  double value;
  F64(double v = 0) : value(v) {}
  operator double() const { return value; }
};
inline llvm::hash_code hash_value(F64 f) {
  return llvm::hash_value(llvm::bit_cast<uint64_t>(f.value));
}

/// A double in an attribute: parsed as a float literal, printed so that it
/// reads back exactly.
mlir::FailureOr<F64> parseF64(mlir::AsmParser &parser);
void printF64(mlir::AsmPrinter &printer, double value);
} // namespace dtl

#include "dialects/dtl/DtlDialect.h.inc"
#include "dialects/dtl/DtlEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/dtl/DtlAttrs.h.inc"

#include "dialects/dtl/DtlInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/dtl/DtlOps.h.inc"

#endif // DTL_DIALECT_DTLOPS_H
