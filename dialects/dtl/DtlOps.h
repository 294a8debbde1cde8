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
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace dtl {
/// How an op's loop behaves when it is split over mesh axes.
enum class LoopKind {
  Parallel, ///< splitting it splits the work and the results
  Sum,      ///< a sum reduction: splitting it leaves partial sums
  Whole,    ///< must not be split (e.g. a softmax's class dimension)
};

/// The elementwise sharding rule (the interface's default).
llvm::SmallVector<LoopKind> elementwiseLoopKinds(mlir::Operation *op);
llvm::SmallVector<mlir::AffineMap> elementwiseIndexingMaps(mlir::Operation *op);
} // namespace dtl

#include "dialects/dtl/DtlDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/dtl/DtlAttrs.h.inc"

#include "dialects/dtl/DtlInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/dtl/DtlOps.h.inc"

#endif // DTL_DIALECT_DTLOPS_H
