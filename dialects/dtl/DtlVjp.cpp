//===- DtlVjp.cpp - the gradient of every differentiable dtl op -----------===//
//
// Each buildVjp builds d(loss)/d(operand) from d(loss)/d(result), after the
// op, for the autodiff pass (passes/Autodiff.cpp).
//
//===----------------------------------------------------------------------===//

#include "dialects/dtl/DtlOps.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace dtl;

// d(a + b) = (g, g)
void AddOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({grads[0], grads[0]});
}

// d(a - b) = (g, -g)
void SubOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Value g = grads[0];
  out.assign({g, NegOp::create(b, getLoc(), g.getType(), g)});
}

// d(a * b) = (g * b, g * a)
void MulOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Value g = grads[0];
  Type t = g.getType();
  out.assign(
      {MulOp::create(b, getLoc(), t, g, getRhs()), MulOp::create(b, getLoc(), t, g, getLhs())});
}

// d(a / b) = (g / b, -(g / b) * (a / b))
void DivOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Type t = grads[0].getType();
  Value gOverB = DivOp::create(b, getLoc(), t, grads[0], getRhs());
  Value aOverB = DivOp::create(b, getLoc(), t, getLhs(), getRhs());
  Value prod = MulOp::create(b, getLoc(), t, gOverB, aOverB);
  out.assign({gOverB, NegOp::create(b, getLoc(), t, prod)});
}

// d(-x) = -g
void NegOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({NegOp::create(b, getLoc(), grads[0].getType(), grads[0])});
}

// d constrain(x) = g under the same constraint
void ShardingConstraintOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign(
      {ShardingConstraintOp::create(b, getLoc(), grads[0].getType(), grads[0], getSharding())});
}

// d relu(x) = g * (x > 0)
void ReluOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({ReluGradOp::create(b, getLoc(), grads[0].getType(), getInput(), grads[0])});
}

// d exp(x) = g * exp(x)
void ExpOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({MulOp::create(b, getLoc(), grads[0].getType(), grads[0], getResult())});
}

// d log(x) = g / x
void LogOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({DivOp::create(b, getLoc(), grads[0].getType(), grads[0], getInput())});
}

// d tanh(x) = g * (1 - tanh(x)^2)
void TanhOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Type t = grads[0].getType();
  Value y = getResult();
  Value one = ConstantOp::create(b, getLoc(), t, b.getF64FloatAttr(1.0));
  Value ySquared = MulOp::create(b, getLoc(), t, y, y);
  Value slope = SubOp::create(b, getLoc(), t, one, ySquared);
  out.assign({MulOp::create(b, getLoc(), t, grads[0], slope)});
}

// d sqrt(x) = g * 0.5 / sqrt(x)
void SqrtOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Type t = grads[0].getType();
  Value half = ConstantOp::create(b, getLoc(), t, b.getF64FloatAttr(0.5));
  Value halfOverY = DivOp::create(b, getLoc(), t, half, getResult());
  out.assign({MulOp::create(b, getLoc(), t, grads[0], halfOverY)});
}

// d broadcast(x) = g summed over the repeated and the new dimensions.
void BroadcastOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  SmallVector<int64_t> shape(getResult().getType().getShape());
  SmallVector<int64_t> repeated, added;
  for (auto [i, d] : llvm::enumerate(getDims()))
    if (in[i] != shape[d])
      repeated.push_back(d);
  for (int64_t d = 0; d < (int64_t)shape.size(); ++d)
    if (!llvm::is_contained(getDims(), d))
      added.push_back(d);
  Value g = grads[0];
  if (!repeated.empty()) {
    g = ReduceSumOp::create(b, getLoc(), g, b.getDenseI64ArrayAttr(repeated), b.getUnitAttr());
  }
  if (!added.empty())
    g = ReduceSumOp::create(b, getLoc(), g, b.getDenseI64ArrayAttr(added), UnitAttr());
  out.assign({g});
}

// d reduce_sum(x) = g broadcast back over the reduced dimensions.
void ReduceSumOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  int64_t rank = getInput().getType().getRank();
  SmallVector<int64_t> kept;
  for (int64_t d = 0; d < rank; ++d)
    if (getKeepDims() || !llvm::is_contained(getDims(), d))
      kept.push_back(d);
  out.assign({BroadcastOp::create(b, getLoc(), getInput().getType(), grads[0],
                                  b.getDenseI64ArrayAttr(kept))});
}

// C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC; each case
// below is that identity with the transposes folded into the flags. An lhs
// [M..., K] of rank > 2 is viewed as [M, K] for the rhs's gradient.
void MatmulOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Value g = grads[0], lhs = getLhs(), rhs = getRhs();
  Type lt = lhs.getType(), rt = rhs.getType();
  bool ta = getTransposeLhs(), tb = getTransposeRhs();
  auto matmul = [&](Type, Value x, Value y, bool tx, bool ty) -> Value {
    return MatmulOp::create(b, getLoc(), x, y, tx, ty);
  };
  auto as2d = [&](Value v) -> Value {
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getRank() == 2)
      return v;
    int64_t rows = type.getNumElements() / type.getShape().back();
    return ReshapeOp::create(
        b, getLoc(), RankedTensorType::get({rows, type.getShape().back()}, type.getElementType()),
        v);
  };
  if (!ta && !tb)
    out.assign({matmul(lt, g, rhs, false, true), matmul(rt, as2d(lhs), as2d(g), true, false)});
  else if (ta && !tb)
    out.assign({matmul(lt, rhs, g, false, true), matmul(rt, lhs, g, false, false)});
  else if (!ta && tb)
    out.assign({matmul(lt, g, rhs, false, false), matmul(rt, as2d(g), as2d(lhs), true, false)});
  else
    out.assign({matmul(lt, rhs, g, true, true), matmul(rt, g, lhs, true, true)});
}

// d cross_entropy = (softmax(logits) - onehot(labels)) * g; labels have none.
void CrossEntropyOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({CrossEntropyGradOp::create(b, getLoc(), getLogits().getType(), getLogits(),
                                         getLabels(), grads[0], Value(), nullptr),
              Value()});
}

// d gelu(x) = g * gelu'(x)
void GeluOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({GeluGradOp::create(b, getLoc(), grads[0].getType(), getInput(), grads[0])});
}

// d softmax = y * (g - sum(g * y)), from the output y
void SoftmaxOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({SoftmaxGradOp::create(b, getLoc(), grads[0].getType(), getResult(), grads[0])});
}

// d layernorm: the input's gradient per row, the params' summed over rows.
// mean and rstd are saved statistics; nothing differentiates through them.
void LayerNormOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Value g = grads[0];
  Value input = LayerNormGradInputOp::create(b, getLoc(), getInput().getType(), getInput(),
                                             getWeight(), getMean(), getRstd(), g);
  auto params = LayerNormGradParamsOp::create(
      b, getLoc(), getWeight().getType(), getBias().getType(), getInput(), getMean(), getRstd(), g);
  out.assign({input, params.getWeightGrad(), params.getBiasGrad()});
}

// d embedding: grad rows added into the table's rows; indices have none.
void EmbeddingOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign(
      {EmbeddingGradOp::create(b, getLoc(), getTable().getType(), getIndices(), grads[0], nullptr),
       Value()});
}

// d attention from the saved log-sum-exp; lse itself reaches no loss.
void CausalAttentionOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  Type t = getQ().getType();
  auto g = CausalAttentionGradOp::create(b, getLoc(), t, t, t, getQ(), getK(), getV(), getLse(),
                                         grads[0], getHeadDim());
  out.assign({g.getQGrad(), g.getKGrad(), g.getVGrad()});
}

// d reshape(x) = g reshaped back
void ReshapeOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({ReshapeOp::create(b, getLoc(), getInput().getType(), grads[0])});
}

// d transpose(x, p) = transpose(g, p^-1)
void TransposeOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  ArrayRef<int64_t> perm = getPermutation();
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, p] : llvm::enumerate(perm))
    inverse[p] = i;
  out.assign({TransposeOp::create(b, getLoc(), grads[0], b.getDenseI64ArrayAttr(inverse))});
}

// d dropout(x) = dropout(g) with the same mask; the step and the layer
// indices have none.
void DropoutOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  out.assign({DropoutOp::create(b, getLoc(), grads[0].getType(), grads[0], getStep(), getLayers(),
                                getRateAttr(), getStreamAttr(), getLayerCountsAttr())});
  out.append(1 + getLayers().size(), Value());
}

// d split(x) = concat of the pieces' gradients (zeros for a piece that
// reaches no loss), in the same order.
void SplitOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  SmallVector<Value> pieces;
  for (auto [g, piece] : llvm::zip(grads, getResults()))
    pieces.push_back(g ? g
                       : ConstantOp::create(b, getLoc(), piece.getType(), b.getF64FloatAttr(0)));
  out.assign({ConcatOp::create(b, getLoc(), getInput().getType(), pieces, getDimAttr(),
                               getInterleaveAttr())});
}

// d concat(x...) = the gradient split the same way.
void ConcatOp::buildVjp(OpBuilder &b, ValueRange grads, SmallVectorImpl<Value> &out) {
  auto split = SplitOp::create(b, getLoc(), getInputs().getTypes(), grads[0], getDimAttr(),
                               getInterleaveAttr());
  out.assign(split.getResults().begin(), split.getResults().end());
}
