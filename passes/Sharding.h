//===- Sharding.h - layouts of values over the mesh, for the passes -*- C++ -*-===//

#ifndef DTL_PASSES_SHARDING_H
#define DTL_PASSES_SHARDING_H

#include "dialects/dtl/DtlOps.h"

namespace dtl {

using Axes = llvm::SmallVector<int16_t>;

/// A value's layout: mesh axes per dimension, and pending partial-sum axes.
struct Layout {
  llvm::SmallVector<Axes> dims;
  Axes partial;

  static Layout replicated(unsigned rank) { return Layout{llvm::SmallVector<Axes>(rank), {}}; }
  static Layout fromAttr(ShardingAttr attr);
  ShardingAttr toAttr(mlir::MLIRContext *ctx, llvm::StringRef grid) const;
};

/// The layout recorded for a function argument, or replicated.
Layout argLayout(mlir::func::FuncOp fn, unsigned index);

/// The number of mesh positions spanned by `axes`.
int64_t meshSpan(mlir::shard::GridOp mesh, llvm::ArrayRef<int16_t> axes);

/// `layout` without the mesh axes of size 1: splitting over one device is no
/// split (`--mesh dp=2,tp=1`), so it must not cost a collective nor show.
Layout withoutTrivialAxes(mlir::shard::GridOp mesh, Layout layout);

/// The loop index a map result refers to, or -1 for a constant (unsplit) dim.
int64_t loopOf(mlir::AffineExpr expr);

/// The positions of an op's operands then results, largest global tensor
/// first (stably): the cost rule of both propagation and partitioning, where
/// the layout of the biggest tensor decides and smaller ones move.
llvm::SmallVector<unsigned> largestFirst(mlir::Operation *op);

} // namespace dtl

#endif // DTL_PASSES_SHARDING_H
