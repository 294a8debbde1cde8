//===- Layout.h - layouts of values over the mesh ---------------*- C++ -*-===//

#ifndef DTL_DIALECT_LAYOUT_H
#define DTL_DIALECT_LAYOUT_H

#include "dialects/dtl/Contract.h"

namespace dtl {

using Axes = llvm::SmallVector<int16_t>;

/// A value's layout: mesh axes per dimension, and pending partial-sum axes.
struct Layout {
  llvm::SmallVector<Axes> dims;
  Axes partial;

  static Layout replicated(unsigned rank) { return Layout{llvm::SmallVector<Axes>(rank), {}}; }
  static Layout fromAttr(ShardingAttr attr);
  ShardingAttr toAttr(mlir::MLIRContext *ctx, llvm::StringRef grid) const;
  bool operator==(const Layout &other) const {
    return dims == other.dims && partial == other.partial;
  }
};

/// The layout recorded for a function argument, or replicated.
Layout argLayout(mlir::func::FuncOp fn, unsigned index);

/// `layout` without the mesh axes of size 1: splitting over one device is no
/// split (`--mesh dp=2,tp=1`), so it must not cost a collective nor show.
Layout withoutTrivialAxes(MeshAttr mesh, Layout layout);

/// The mesh axes a pipelined repeat's layers are split over as stages: its
/// `pipeline` axis when that spans more than one device; none otherwise.
Axes stageAxes(RepeatOp repeat, MeshAttr mesh);

/// The loop index a map result refers to, or -1 for a constant (unsplit) dim.
int64_t loopOf(mlir::AffineExpr expr);

/// The positions of `values`, largest global tensor first (stably): the cost
/// rule of both propagation and partitioning, where the layout of the
/// biggest tensor decides and smaller ones move. Non-tensors come last.
llvm::SmallVector<unsigned> largestFirst(mlir::ValueRange values);

} // namespace dtl

#endif // DTL_DIALECT_LAYOUT_H
