//===- Layout.cpp - layouts of values over the mesh -----------------------===//

#include "dialects/dtl/Layout.h"

using namespace mlir;
using namespace dtl;

Layout Layout::fromAttr(ShardingAttr attr) {
  Layout layout;
  for (DenseI16ArrayAttr axes : attr.getDims())
    layout.dims.push_back(Axes(axes.asArrayRef()));
  layout.partial = Axes(attr.getPartial().asArrayRef());
  return layout;
}

ShardingAttr Layout::toAttr(MLIRContext *ctx, StringRef grid) const {
  return ShardingAttr::get(ctx, grid, dims, partial);
}

Layout dtl::argLayout(func::FuncOp fn, unsigned index) {
  if (auto attr = fn.getArgAttrOfType<ShardingAttr>(index, attr::sharding))
    return Layout::fromAttr(attr);
  return Layout::replicated(cast<RankedTensorType>(fn.getArgument(index).getType()).getRank());
}

SmallVector<unsigned> dtl::largestFirst(ValueRange values) {
  SmallVector<int64_t> sizes;
  for (Value v : values) {
    auto tensor = dyn_cast<RankedTensorType>(v.getType());
    sizes.push_back(tensor ? tensor.getNumElements() : 0);
  }
  SmallVector<unsigned> order = llvm::to_vector(llvm::seq<unsigned>(0, sizes.size()));
  llvm::stable_sort(order, [&](unsigned a, unsigned b) { return sizes[a] > sizes[b]; });
  return order;
}

Layout dtl::withoutTrivialAxes(MeshAttr mesh, Layout layout) {
  auto trivial = [&](int16_t a) { return mesh.span({a}) == 1; };
  for (Axes &axes : layout.dims)
    llvm::erase_if(axes, trivial);
  llvm::erase_if(layout.partial, trivial);
  return layout;
}

Axes dtl::stageAxes(RepeatOp repeat, MeshAttr mesh) {
  if (!repeat.getPipeline())
    return {};
  int64_t axis = mesh.axisIndex(*repeat.getPipeline());
  if (axis < 0 || mesh.span({int16_t(axis)}) == 1)
    return {};
  return {int16_t(axis)};
}

int64_t dtl::loopOf(AffineExpr expr) {
  if (auto dim = dyn_cast<AffineDimExpr>(expr))
    return dim.getPosition();
  return -1;
}
