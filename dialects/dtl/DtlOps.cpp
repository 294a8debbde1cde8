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
  if (a.size() != 2 || b.size() != 2 || c.size() != 2)
    return emitOpError("operands and result must be 2-D");
  int64_t m = getTransposeLhs() ? a[1] : a[0], k = getTransposeLhs() ? a[0] : a[1];
  int64_t k2 = getTransposeRhs() ? b[1] : b[0], n = getTransposeRhs() ? b[0] : b[1];
  if (k != k2)
    return emitOpError("contraction sizes differ: ") << k << " vs " << k2;
  if (c[0] != m || c[1] != n)
    return emitOpError("result must be ") << m << "x" << n;
  return success();
}

/// Classifier ops take logits [B, C] and labels [B].
static LogicalResult verifyClassifier(Operation *op, Value logits, Value labels) {
  ArrayRef<int64_t> l = shapeOf(logits), y = shapeOf(labels);
  if (l.size() != 2 || y.size() != 1 || l[0] != y[0])
    return op->emitOpError("needs logits [B, C] and labels [B]");
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
