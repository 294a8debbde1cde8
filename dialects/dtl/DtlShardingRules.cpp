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

/// A non-tensor operand (a layer index) has no dimensions.
static int64_t rankOf(Value v) {
  auto tensor = dyn_cast<RankedTensorType>(v.getType());
  return tensor ? tensor.getRank() : 0;
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

SmallVector<LoopKind> BroadcastOp::getLoopKinds() { return elementwiseLoopKinds(*this); }

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
// Matmul: loops (m..., n, k), k a sum; an lhs of rank > 2 has one m loop
// per leading dimension.
//===----------------------------------------------------------------------===//

SmallVector<LoopKind> MatmulOp::getLoopKinds() {
  SmallVector<LoopKind> kinds(getResult().getType().getRank(), LoopKind::Parallel);
  kinds.push_back(LoopKind::Sum);
  return kinds;
}

SmallVector<AffineMap> MatmulOp::getIndexingMaps() {
  MLIRContext *ctx = getContext();
  unsigned rank = getResult().getType().getRank(), loops = rank + 1;
  SmallVector<AffineExpr> rows;
  for (unsigned i = 0; i + 1 < rank; ++i)
    rows.push_back(getAffineDimExpr(i, ctx));
  AffineExpr n = getAffineDimExpr(rank - 1, ctx), k = getAffineDimExpr(rank, ctx);
  auto map = [&](ArrayRef<AffineExpr> exprs) { return AffineMap::get(loops, 0, exprs, ctx); };
  SmallVector<AffineExpr> lhs(rows), result(rows);
  lhs.push_back(k);
  result.push_back(n);
  if (getTransposeLhs())
    lhs = {k, rows[0]};
  return {map(lhs), getTransposeRhs() ? map({n, k}) : map({k, n}), map(result)};
}

bool MatmulOp::isLinearIn(unsigned) { return true; }

//===----------------------------------------------------------------------===//
// Row-wise ops: loops (rows..., c); what each operand or result holds.
//===----------------------------------------------------------------------===//

namespace {
enum class RowPart { Full, Rows, Channels };

AffineMap rowMap(MLIRContext *ctx, unsigned loops, RowPart part) {
  SmallVector<AffineExpr> exprs;
  if (part == RowPart::Channels)
    exprs.push_back(getAffineDimExpr(loops - 1, ctx));
  else
    for (unsigned i = 0; i < (part == RowPart::Full ? loops : loops - 1); ++i)
      exprs.push_back(getAffineDimExpr(i, ctx));
  return AffineMap::get(loops, 0, exprs, ctx);
}

SmallVector<AffineMap> rowMaps(Operation *op, ArrayRef<RowPart> parts) {
  unsigned loops = rankOf(op->getOperand(0));
  return llvm::to_vector(
      llvm::map_range(parts, [&](RowPart p) { return rowMap(op->getContext(), loops, p); }));
}

/// Rows split freely; the channel loop is `channels`.
SmallVector<LoopKind> rowKinds(Operation *op, LoopKind rows, LoopKind channels) {
  SmallVector<LoopKind> kinds(rankOf(op->getOperand(0)) - 1, rows);
  kinds.push_back(channels);
  return kinds;
}
} // namespace

using RP = RowPart;

SmallVector<LoopKind> SoftmaxOp::getLoopKinds() {
  return rowKinds(*this, LoopKind::Parallel, LoopKind::Whole);
}
SmallVector<AffineMap> SoftmaxOp::getIndexingMaps() { return rowMaps(*this, {RP::Full, RP::Full}); }
SmallVector<LoopKind> SoftmaxGradOp::getLoopKinds() {
  return rowKinds(*this, LoopKind::Parallel, LoopKind::Whole);
}
SmallVector<AffineMap> SoftmaxGradOp::getIndexingMaps() {
  return rowMaps(*this, {RP::Full, RP::Full, RP::Full});
}
SmallVector<LoopKind> LayerNormOp::getLoopKinds() {
  return rowKinds(*this, LoopKind::Parallel, LoopKind::Whole);
}
SmallVector<AffineMap> LayerNormOp::getIndexingMaps() {
  return rowMaps(*this, {RP::Full, RP::Channels, RP::Channels, RP::Full, RP::Rows, RP::Rows});
}
SmallVector<LoopKind> LayerNormGradInputOp::getLoopKinds() {
  return rowKinds(*this, LoopKind::Parallel, LoopKind::Whole);
}
SmallVector<AffineMap> LayerNormGradInputOp::getIndexingMaps() {
  return rowMaps(*this, {RP::Full, RP::Channels, RP::Rows, RP::Rows, RP::Full, RP::Full});
}
SmallVector<LoopKind> LayerNormGradParamsOp::getLoopKinds() {
  return rowKinds(*this, LoopKind::Sum, LoopKind::Whole);
}
SmallVector<AffineMap> LayerNormGradParamsOp::getIndexingMaps() {
  return rowMaps(*this, {RP::Full, RP::Rows, RP::Rows, RP::Full, RP::Channels, RP::Channels});
}

//===----------------------------------------------------------------------===//
// Embedding: loops (i..., c, v). The lookup sums over v (the table row:
// one row matches), so a table split by rows leaves partial sums; the
// gradient sums over the index loops and is parallel over the rows.
//===----------------------------------------------------------------------===//

static SmallVector<AffineMap> embeddingMaps(MLIRContext *ctx, unsigned indexRank, bool gradient) {
  unsigned loops = indexRank + 2;
  SmallVector<AffineExpr> index, indexAndChannel;
  for (unsigned i = 0; i < indexRank; ++i)
    index.push_back(getAffineDimExpr(i, ctx));
  indexAndChannel = index;
  indexAndChannel.push_back(getAffineDimExpr(indexRank, ctx));
  AffineMap table = AffineMap::get(
      loops, 0, {getAffineDimExpr(indexRank + 1, ctx), getAffineDimExpr(indexRank, ctx)}, ctx);
  AffineMap indices = AffineMap::get(loops, 0, index, ctx);
  AffineMap rows = AffineMap::get(loops, 0, indexAndChannel, ctx);
  if (gradient)
    return {indices, rows, table};
  return {table, indices, rows};
}

SmallVector<LoopKind> EmbeddingOp::getLoopKinds() {
  SmallVector<LoopKind> kinds(rankOf(getIndices()) + 1, LoopKind::Parallel);
  kinds.push_back(LoopKind::Sum);
  return kinds;
}
SmallVector<AffineMap> EmbeddingOp::getIndexingMaps() {
  return embeddingMaps(getContext(), rankOf(getIndices()), false);
}
SmallVector<LoopKind> EmbeddingGradOp::getLoopKinds() {
  SmallVector<LoopKind> kinds(rankOf(getIndices()), LoopKind::Sum);
  kinds.append({LoopKind::Parallel, LoopKind::Parallel});
  return kinds;
}
SmallVector<AffineMap> EmbeddingGradOp::getIndexingMaps() {
  return embeddingMaps(getContext(), rankOf(getIndices()), true);
}

//===----------------------------------------------------------------------===//
// Attention: loops (b, t, c); t (positions) whole. The heads
// dimension of lse follows the channel loop: splitting the channels into
// whole heads splits the heads alike (the partitioner checks divisibility).
//===----------------------------------------------------------------------===//

static SmallVector<LoopKind> attentionKinds() {
  return {LoopKind::Parallel, LoopKind::Whole, LoopKind::Parallel};
}

/// `count` maps of (b, t, c) activations, but lse (b, c, t) at `lseAt`.
static SmallVector<AffineMap> attentionMaps(MLIRContext *ctx, unsigned lseAt, unsigned count) {
  AffineExpr b = getAffineDimExpr(0, ctx), t = getAffineDimExpr(1, ctx),
             c = getAffineDimExpr(2, ctx);
  SmallVector<AffineMap> maps(count, AffineMap::get(3, 0, {b, t, c}, ctx));
  maps[lseAt] = AffineMap::get(3, 0, {b, c, t}, ctx);
  return maps;
}

SmallVector<LoopKind> CausalAttentionOp::getLoopKinds() { return attentionKinds(); }
SmallVector<AffineMap> CausalAttentionOp::getIndexingMaps() {
  // q, k, v, result, lse
  return attentionMaps(getContext(), 4, 5);
}
SmallVector<LoopKind> CausalAttentionGradOp::getLoopKinds() { return attentionKinds(); }
SmallVector<AffineMap> CausalAttentionGradOp::getIndexingMaps() {
  // q, k, v, lse, grad, q_grad, k_grad, v_grad
  return attentionMaps(getContext(), 3, 8);
}

//===----------------------------------------------------------------------===//
// Layout ops
//===----------------------------------------------------------------------===//

// One loop per result dim. A merged group is indexed by its major non-unit
// input dim (its split is the merged dim's split); the minor loops of a
// split group are whole, since the input cannot show their split.
SmallVector<LoopKind> ReshapeOp::getLoopKinds() {
  SmallVector<LoopKind> kinds(rankOf(getResult()), LoopKind::Whole);
  auto groups = reshapeGroups(getInput().getType().getShape(), getResult().getType().getShape());
  for (const ReshapeGroup &g : groups.value_or(SmallVector<ReshapeGroup>()))
    kinds[g.outBegin] = LoopKind::Parallel;
  return kinds;
}

SmallVector<AffineMap> ReshapeOp::getIndexingMaps() {
  MLIRContext *ctx = getContext();
  ArrayRef<int64_t> in = getInput().getType().getShape();
  unsigned loops = rankOf(getResult());
  SmallVector<AffineExpr> exprs(in.size(), getAffineConstantExpr(0, ctx));
  auto groups = reshapeGroups(in, getResult().getType().getShape());
  for (const ReshapeGroup &g : groups.value_or(SmallVector<ReshapeGroup>())) {
    int64_t major = g.inBegin;
    while (major + 1 < g.inEnd && in[major] == 1)
      ++major;
    exprs[major] = getAffineDimExpr(g.outBegin, ctx);
  }
  return {AffineMap::get(loops, 0, exprs, ctx), AffineMap::getMultiDimIdentityMap(loops, ctx)};
}

bool ReshapeOp::isLinearIn(unsigned) { return true; }

SmallVector<LoopKind> TransposeOp::getLoopKinds() { return elementwiseLoopKinds(*this); }

SmallVector<AffineMap> TransposeOp::getIndexingMaps() {
  MLIRContext *ctx = getContext();
  ArrayRef<int64_t> perm = getPermutation();
  SmallVector<AffineExpr> exprs(perm.size());
  for (auto [loop, d] : llvm::enumerate(perm))
    exprs[d] = getAffineDimExpr(loop, ctx);
  return {AffineMap::get(perm.size(), 0, exprs, ctx),
          AffineMap::getMultiDimIdentityMap(perm.size(), ctx)};
}

bool TransposeOp::isLinearIn(unsigned) { return true; }

bool DropoutOp::isLinearIn(unsigned index) { return index == 0; }

//===----------------------------------------------------------------------===//
// Classifier ops: loops (rows..., c). Cross-entropy, its gradient and the
// argmax of `correct` combine a split class loop from [rows] statistics
// (dtl-partition).
//===----------------------------------------------------------------------===//

static SmallVector<LoopKind> classifierLoopKinds(Operation *op) {
  SmallVector<LoopKind> kinds(rankOf(op->getOperand(0)) - 1, LoopKind::Parallel);
  kinds.push_back(LoopKind::Combined);
  return kinds;
}

/// Maps for operands/results that are [rows..., C] (`perClass`) or [rows...].
static SmallVector<AffineMap> classifierMaps(Operation *op, ArrayRef<bool> perClass) {
  unsigned loops = rankOf(op->getOperand(0));
  SmallVector<AffineMap> maps;
  for (bool full : perClass)
    maps.push_back(rowMap(op->getContext(), loops, full ? RowPart::Full : RowPart::Rows));
  return maps;
}

SmallVector<LoopKind> CrossEntropyOp::getLoopKinds() { return classifierLoopKinds(*this); }
SmallVector<AffineMap> CrossEntropyOp::getIndexingMaps() {
  return classifierMaps(*this, {true, false, false});
}
SmallVector<LoopKind> CrossEntropyGradOp::getLoopKinds() { return classifierLoopKinds(*this); }
SmallVector<AffineMap> CrossEntropyGradOp::getIndexingMaps() {
  if (getLse())
    return classifierMaps(*this, {true, false, false, false, true});
  return classifierMaps(*this, {true, false, false, true});
}
SmallVector<LoopKind> CorrectOp::getLoopKinds() { return classifierLoopKinds(*this); }
SmallVector<AffineMap> CorrectOp::getIndexingMaps() {
  return classifierMaps(*this, {true, false, false});
}

//===----------------------------------------------------------------------===//
// Split and concat: one parallel loop per dimension, indexing the pieces and
// the whole alike. The pieces' dimension stays whole unless interleaved:
// n blocks of whole pieces split into any number of shards dividing n.
//===----------------------------------------------------------------------===//

static SmallVector<LoopKind> piecesLoopKinds(int64_t rank, int64_t dim, int64_t interleave) {
  SmallVector<LoopKind> kinds(rank, LoopKind::Parallel);
  if (interleave == 1)
    kinds[dim] = LoopKind::Whole;
  return kinds;
}

static SmallVector<int64_t> piecesShardDivisors(int64_t rank, int64_t dim, int64_t interleave) {
  SmallVector<int64_t> divisors(rank, 0);
  divisors[dim] = interleave;
  return divisors;
}

SmallVector<LoopKind> SplitOp::getLoopKinds() {
  return piecesLoopKinds(rankOf(getInput()), getDim(), getInterleave());
}
SmallVector<AffineMap> SplitOp::getIndexingMaps() { return elementwiseIndexingMaps(*this); }
SmallVector<int64_t> SplitOp::getLoopShardDivisors() {
  return piecesShardDivisors(rankOf(getInput()), getDim(), getInterleave());
}
bool SplitOp::isLinearIn(unsigned) { return true; }
bool SplitOp::isAdditive() { return true; }

SmallVector<LoopKind> ConcatOp::getLoopKinds() {
  return piecesLoopKinds(rankOf(getResult()), getDim(), getInterleave());
}
SmallVector<AffineMap> ConcatOp::getIndexingMaps() { return elementwiseIndexingMaps(*this); }
SmallVector<int64_t> ConcatOp::getLoopShardDivisors() {
  return piecesShardDivisors(rankOf(getResult()), getDim(), getInterleave());
}
bool ConcatOp::isLinearIn(unsigned) { return true; }
bool ConcatOp::isAdditive() { return true; }
