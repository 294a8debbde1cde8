//===- DtlOps.cpp - dtl op verifiers --------------------------------------===//

#include "dialects/dtl/DtlOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace dtl;

#include "dialects/dtl/DtlInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/dtl/DtlOps.cpp.inc"

static ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

LogicalResult BroadcastOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  ArrayRef<int64_t> dims = getDims();
  if (dims.size() != in.size())
    return emitOpError("needs one result dimension per operand dimension");
  for (auto [i, d] : llvm::enumerate(dims)) {
    if (d < 0 || d >= (int64_t)out.size() || (i > 0 && d <= dims[i - 1]))
      return emitOpError("dims must increase and lie within the result rank");
    if (in[i] != out[d] && in[i] != 1)
      return emitOpError("operand dimension ")
             << i << " (" << in[i] << ") cannot broadcast to " << out[d];
  }
  return success();
}

LogicalResult ReduceSumOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  SmallVector<int64_t> expected;
  for (auto [i, size] : llvm::enumerate(in)) {
    bool reduced = llvm::is_contained(getDims(), (int64_t)i);
    if (!reduced)
      expected.push_back(size);
    else if (getKeepDims())
      expected.push_back(1);
  }
  for (int64_t d : getDims())
    if (d < 0 || d >= (int64_t)in.size())
      return emitOpError("reduced dimension ") << d << " is out of range";
  if (ArrayRef<int64_t>(expected) != out)
    return emitOpError("result shape does not match the reduction");
  return success();
}

LogicalResult MatmulOp::verify() {
  ArrayRef<int64_t> a = shapeOf(getLhs()), b = shapeOf(getRhs()),
                    c = shapeOf(getResult());
  if (a.size() < 2 || b.size() != 2 || c.size() != a.size())
    return emitOpError("needs a 2-D rhs and an lhs and result of the same rank >= 2");
  if (a.size() > 2 && getTransposeLhs())
    return emitOpError("a transposed lhs must be 2-D");
  int64_t m = getTransposeLhs() ? a[1] : a[0], k = getTransposeLhs() ? a[0] : a.back();
  int64_t k2 = getTransposeRhs() ? b[1] : b[0], n = getTransposeRhs() ? b[0] : b[1];
  if (k != k2)
    return emitOpError("contraction sizes differ: ") << k << " vs " << k2;
  if (a.size() == 2 && (c[0] != m || c[1] != n))
    return emitOpError("result must be ") << m << "x" << n;
  if (a.size() > 2 && (c.drop_back() != a.drop_back() || c.back() != n))
    return emitOpError("result must keep the lhs's leading dimensions and end in ") << n;
  return success();
}

LogicalResult MatmulBiasOp::verify() {
  ArrayRef<int64_t> c = shapeOf(getResult());
  if (c.empty() || shapeOf(getBias()) != c.take_back())
    return emitOpError("bias must be the result's last dimension");
  return success();
}

/// Classifier ops take logits [..., C] and labels [...].
static LogicalResult verifyClassifier(Operation *op, Value logits, Value labels) {
  ArrayRef<int64_t> l = shapeOf(logits), y = shapeOf(labels);
  if (l.size() < 2 || l.drop_back() != y)
    return op->emitOpError("needs logits [..., C] and labels [...]");
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  return verifyClassifier(*this, getLogits(), getLabels());
}
LogicalResult CrossEntropyGradOp::verify() {
  if (shapeOf(getGrad()) != shapeOf(getLabels()))
    return emitOpError("needs one gradient per example");
  return verifyClassifier(*this, getLogits(), getLabels());
}
LogicalResult CorrectOp::verify() {
  return verifyClassifier(*this, getLogits(), getLabels());
}

LogicalResult LayerNormOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getInput());
  if (x.empty() || shapeOf(getWeight()) != x.take_back() || shapeOf(getBias()) != x.take_back())
    return emitOpError("needs weight and bias shaped like the input's last dimension");
  if (shapeOf(getMean()) != x.drop_back() || shapeOf(getRstd()) != x.drop_back())
    return emitOpError("mean and rstd have one entry per row");
  return success();
}

LogicalResult EmbeddingOp::verify() {
  ArrayRef<int64_t> table = shapeOf(getTable()), ids = shapeOf(getIndices()),
                    out = shapeOf(getResult());
  if (table.size() != 2 || out.size() != ids.size() + 1 || out.drop_back() != ids ||
      out.back() != table[1])
    return emitOpError("needs a [V, C] table and a result shaped [indices..., C]");
  return success();
}

LogicalResult CausalAttentionOp::verify() {
  ArrayRef<int64_t> q = shapeOf(getQ());
  if (q.size() != 3 || shapeOf(getK()) != q || shapeOf(getV()) != q ||
      shapeOf(getResult()) != q)
    return emitOpError("needs q, k, v and result of one shape [B, T, C]");
  // `heads` counts all heads; after partitioning, probs holds this rank's.
  ArrayRef<int64_t> probs = shapeOf(getProbs());
  int64_t heads = getHeads();
  if (probs.size() != 4 || probs[0] != q[0] || probs[2] != q[1] || probs[3] != q[1] ||
      probs[1] < 1 || heads % probs[1] != 0 || q[2] % probs[1] != 0)
    return emitOpError("probs must be [B, heads (or this rank's share), T, T]");
  return success();
}

std::optional<SmallVector<ReshapeGroup>> dtl::reshapeGroups(ArrayRef<int64_t> in,
                                                           ArrayRef<int64_t> out) {
  SmallVector<ReshapeGroup> groups;
  int64_t i = 0, j = 0;
  while (i < (int64_t)in.size() && j < (int64_t)out.size()) {
    ReshapeGroup g{i, i + 1, j, j + 1};
    int64_t a = in[i], b = out[j];
    while (a != b) {
      if (a < b && g.inEnd < (int64_t)in.size())
        a *= in[g.inEnd++];
      else if (b < a && g.outEnd < (int64_t)out.size())
        b *= out[g.outEnd++];
      else
        return std::nullopt;
    }
    if (g.inEnd - g.inBegin > 1 && g.outEnd - g.outBegin > 1)
      return std::nullopt;
    groups.push_back(g);
    i = g.inEnd;
    j = g.outEnd;
  }
  // Trailing size-1 dimensions join the last group.
  for (; i < (int64_t)in.size(); ++i)
    if (in[i] != 1 || groups.empty())
      return std::nullopt;
    else
      groups.back().inEnd = i + 1;
  for (; j < (int64_t)out.size(); ++j)
    if (out[j] != 1 || groups.empty())
      return std::nullopt;
    else
      groups.back().outEnd = j + 1;
  return groups;
}

LogicalResult ReshapeOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType()),
       out = cast<RankedTensorType>(getResult().getType());
  if (in.getElementType() != out.getElementType() ||
      in.getNumElements() != out.getNumElements())
    return emitOpError("must keep the element type and count");
  if (in.getRank() > 0 && out.getRank() > 0 && !reshapeGroups(in.getShape(), out.getShape()))
    return emitOpError("must merge or split dimensions group by group");
  return success();
}

LogicalResult TransposeOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  ArrayRef<int64_t> perm = getPermutation();
  if (perm.size() != in.size() || out.size() != in.size())
    return emitOpError("needs one permutation entry per dimension");
  SmallVector<bool> seen(in.size(), false);
  for (auto [i, p] : llvm::enumerate(perm)) {
    if (p < 0 || p >= (int64_t)in.size() || seen[p])
      return emitOpError("permutation is not a permutation");
    seen[p] = true;
    if (out[i] != in[p])
      return emitOpError("result dimension ") << i << " must be input dimension " << p;
  }
  return success();
}

LogicalResult LayerOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput());
  if (in.empty() || in.drop_front() != shapeOf(getResult()))
    return emitOpError("result must be the input without its leading dimension");
  if (getIndex() < 0 || getIndex() >= in[0])
    return emitOpError("layer ") << getIndex() << " is out of range";
  return success();
}

LogicalResult StackOp::verify() {
  ArrayRef<int64_t> out = shapeOf(getResult());
  if (getInputs().empty() || out.empty() || out[0] != (int64_t)getInputs().size())
    return emitOpError("result's leading dimension must count the inputs");
  for (Value v : getInputs())
    if (shapeOf(v) != out.drop_front())
      return emitOpError("inputs must all be shaped like one result slice");
  return success();
}
