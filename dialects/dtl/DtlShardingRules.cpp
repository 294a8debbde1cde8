//===- DtlShardingRules.cpp - each op's loops and indexing maps -----------===//
//
// The sharding rule of every dtl op (see ShardingRuleOpInterface): which
// loops it iterates, how they index operands and results, and which operands
// a partial sum may flow through.
//
//===----------------------------------------------------------------------===//

#include "dialects/dtl/DtlOps.h"

using namespace mlir;
using namespace dtl;

static int64_t rankOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getRank();
}

SmallVector<LoopKind> dtl::elementwiseLoopKinds(Operation *op) {
  return SmallVector<LoopKind>(rankOf(op->getResult(0)), LoopKind::Parallel);
}

SmallVector<AffineMap> dtl::elementwiseIndexingMaps(Operation *op) {
  unsigned loops = rankOf(op->getResult(0));
  MLIRContext *ctx = op->getContext();
  SmallVector<AffineMap> maps;
  for (Value operand : op->getOperands())
    maps.push_back(rankOf(operand) == 0 ? AffineMap::get(loops, 0, {}, ctx)
                                        : AffineMap::getMultiDimIdentityMap(loops, ctx));
  for (unsigned i = 0; i < op->getNumResults(); ++i)
    maps.push_back(AffineMap::getMultiDimIdentityMap(loops, ctx));
  return maps;
}

bool AddOp::isAdditive() { return true; }
bool SubOp::isAdditive() { return true; }
bool MulOp::isLinearIn(unsigned) { return true; }
bool DivOp::isLinearIn(unsigned index) { return index == 0; }
bool NegOp::isLinearIn(unsigned) { return true; }

//===----------------------------------------------------------------------===//
// Broadcast: one parallel loop per result dim; repeated size-1 dims unsplit.
//===----------------------------------------------------------------------===//

SmallVector<LoopKind> BroadcastOp::getLoopKinds() {
  return elementwiseLoopKinds(*this);
}

SmallVector<AffineMap> BroadcastOp::getIndexingMaps() {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> out = getResult().getType().getShape();
  SmallVector<AffineExpr> exprs;
  for (auto [i, d] : llvm::enumerate(getDims()))
    exprs.push_back(in[i] == out[d] ? getAffineDimExpr(d, getContext())
                                    : getAffineConstantExpr(0, getContext()));
  return {AffineMap::get(out.size(), 0, exprs, getContext()),
          AffineMap::getMultiDimIdentityMap(out.size(), getContext())};
}

bool BroadcastOp::isLinearIn(unsigned) { return true; }

//===----------------------------------------------------------------------===//
// ReduceSum: one loop per input dim; the reduced ones are sums.
//===----------------------------------------------------------------------===//

SmallVector<LoopKind> ReduceSumOp::getLoopKinds() {
  SmallVector<LoopKind> kinds(getInput().getType().getRank(), LoopKind::Parallel);
  for (int64_t d : getDims())
    kinds[d] = LoopKind::Sum;
  return kinds;
}

SmallVector<AffineMap> ReduceSumOp::getIndexingMaps() {
  unsigned rank = getInput().getType().getRank();
  SmallVector<AffineExpr> resultExprs;
  for (unsigned i = 0; i < rank; ++i) {
    if (!llvm::is_contained(getDims(), (int64_t)i))
      resultExprs.push_back(getAffineDimExpr(i, getContext()));
    else if (getKeepDims())
      resultExprs.push_back(getAffineConstantExpr(0, getContext()));
  }
  return {AffineMap::getMultiDimIdentityMap(rank, getContext()),
          AffineMap::get(rank, 0, resultExprs, getContext())};
}

bool ReduceSumOp::isLinearIn(unsigned) { return true; }

//===----------------------------------------------------------------------===//
// Matmul: loops (m, n, k), k a sum.
//===----------------------------------------------------------------------===//

SmallVector<LoopKind> MatmulOp::getLoopKinds() {
  return {LoopKind::Parallel, LoopKind::Parallel, LoopKind::Sum};
}

SmallVector<AffineMap> MatmulOp::getIndexingMaps() {
  MLIRContext *ctx = getContext();
  AffineExpr m = getAffineDimExpr(0, ctx), n = getAffineDimExpr(1, ctx),
             k = getAffineDimExpr(2, ctx);
  auto map = [&](AffineExpr a, AffineExpr b) { return AffineMap::get(3, 0, {a, b}, ctx); };
  return {getTransposeLhs() ? map(k, m) : map(m, k),
          getTransposeRhs() ? map(n, k) : map(k, n), map(m, n)};
}

bool MatmulOp::isLinearIn(unsigned) { return true; }

//===----------------------------------------------------------------------===//
// Classifier ops: loops (b, c); the class loop needs whole rows.
//===----------------------------------------------------------------------===//

static SmallVector<LoopKind> classifierLoopKinds() {
  return {LoopKind::Parallel, LoopKind::Whole};
}

/// Maps for operands/results that are [B, C] (`perClass`) or [B].
static SmallVector<AffineMap> classifierMaps(MLIRContext *ctx,
                                             ArrayRef<bool> perClass) {
  AffineExpr b = getAffineDimExpr(0, ctx), c = getAffineDimExpr(1, ctx);
  SmallVector<AffineMap> maps;
  for (bool rows : perClass)
    maps.push_back(rows ? AffineMap::get(2, 0, {b, c}, ctx) : AffineMap::get(2, 0, {b}, ctx));
  return maps;
}

SmallVector<LoopKind> CrossEntropyOp::getLoopKinds() { return classifierLoopKinds(); }
SmallVector<AffineMap> CrossEntropyOp::getIndexingMaps() {
  return classifierMaps(getContext(), {true, false, false});
}
SmallVector<LoopKind> CrossEntropyGradOp::getLoopKinds() { return classifierLoopKinds(); }
SmallVector<AffineMap> CrossEntropyGradOp::getIndexingMaps() {
  return classifierMaps(getContext(), {true, false, false, true});
}
SmallVector<LoopKind> CorrectOp::getLoopKinds() { return classifierLoopKinds(); }
SmallVector<AffineMap> CorrectOp::getIndexingMaps() {
  return classifierMaps(getContext(), {true, false, false});
}
