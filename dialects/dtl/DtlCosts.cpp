//===- DtlCosts.cpp - what each op costs (CostOpInterface) ----------------===//
//
// Operations and bytes of one execution of an op, from its types (local
// after partitioning), for --explain and whatever plans by cost.
//
//===----------------------------------------------------------------------===//

#include "dialects/dtl/Contract.h"
#include "dialects/dtl/DtlOps.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace dtl;

int64_t dtl::tensorBytes(Type type, int64_t realBytes) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return 0;
  Type element = tensor.getElementType();
  return tensor.getNumElements() * (element.isInteger(32) ? 4 : element.isBF16() ? 2 : realBytes);
}

int64_t dtl::plannedStepBytes(func::FuncOp step, int64_t realBytes) {
  int64_t bytes = 0;
  for (Type t : step.getArgumentTypes())
    bytes += tensorBytes(t, realBytes);
  // New params and state are written over the old (dtl-mark-in-place).
  for (unsigned i = 0; i < step.getNumResults(); ++i)
    if (resultRole(step, i) != Role::param && resultRole(step, i) != Role::opt_state)
      bytes += tensorBytes(step.getResultTypes()[i], realBytes);
  if (auto arena = step->getAttrOfType<IntegerAttr>(attr::arenaBytes))
    bytes += arena.getInt();
  return bytes;
}

std::string dtl::formatBytes(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? llvm::formatv("{0} B", (int64_t)bytes).str()
                : llvm::formatv("{0:f1} {1}", bytes, units[u]).str();
}

static double elements(Value v) {
  auto tensor = dyn_cast<RankedTensorType>(v.getType());
  return tensor ? double(tensor.getNumElements()) : 0;
}

/// Every tensor operand read once and every result written once.
static double bytesMoved(Operation *op, int64_t realBytes) {
  double bytes = 0;
  for (Value v : op->getOperands())
    bytes += tensorBytes(v.getType(), realBytes);
  for (Value v : op->getResults())
    bytes += tensorBytes(v.getType(), realBytes);
  return bytes;
}

OpCost dtl::elementwiseCost(Operation *op, int64_t realBytes) {
  OpCost cost;
  for (Value r : op->getResults())
    cost.otherFlops = std::max(cost.otherFlops, elements(r));
  cost.bytes = bytesMoved(op, realBytes);
  return cost;
}

OpCost ConstantOp::getCost(int64_t realBytes) {
  return OpCost{0, 0, double(tensorBytes(getType(), realBytes))};
}

/// 2 m n k for C[m, n] = A[m, k] B[k, n]; an lhs [M..., K] has prod(M...) rows.
static double gemmFlops(Value lhs, Value result, bool transposeLhs) {
  ArrayRef<int64_t> a = cast<RankedTensorType>(lhs.getType()).getShape();
  int64_t k = transposeLhs ? a[0] : a.back();
  return 2.0 * elements(result) * double(k);
}

OpCost MatmulOp::getCost(int64_t realBytes) {
  return OpCost{gemmFlops(getLhs(), getResult(), getTransposeLhs()), 0,
                bytesMoved(*this, realBytes)};
}

OpCost MatmulBiasOp::getCost(int64_t realBytes) {
  return OpCost{gemmFlops(getLhs(), getResult(), getTransposeLhs()), elements(getResult()),
                bytesMoved(*this, realBytes)};
}

OpCost LayerNormGradParamsOp::getCost(int64_t realBytes) {
  // A product and two sums per input element.
  return OpCost{0, 3 * elements(getInput()), bytesMoved(*this, realBytes)};
}

// Per (batch, head): scores = q k^T and out = P v, each 2 T T d, the
// masked half computed too; the softmax's exp, sum and scale per score.
static double attentionScores(ArrayRef<int64_t> q, int64_t headDim) {
  return double(q[0]) * q[1] * q[1] * double(q[2] / headDim);
}

OpCost CausalAttentionOp::getCost(int64_t realBytes) {
  ArrayRef<int64_t> q = getQ().getType().getShape();
  double gemm = 4.0 * q[0] * q[1] * q[1] * q[2];
  return OpCost{gemm, 3 * attentionScores(q, getHeadDim()), bytesMoved(*this, realBytes)};
}

// Five such GEMMs: the scores again (P is recomputed from lse, not saved),
// dv = P^T g, dP = g v^T, dq = dS k, dk = dS^T q.
OpCost CausalAttentionGradOp::getCost(int64_t realBytes) {
  ArrayRef<int64_t> q = getQ().getType().getShape();
  double gemm = 10.0 * q[0] * q[1] * q[1] * q[2];
  return OpCost{gemm, 4 * attentionScores(q, getHeadDim()), bytesMoved(*this, realBytes)};
}

OpCost AdamwUpdateOp::getCost(int64_t realBytes) {
  return OpCost{0, 12 * elements(getParam()), bytesMoved(*this, realBytes)};
}

OpCost SgdUpdateOp::getCost(int64_t realBytes) {
  return OpCost{0, 4 * elements(getParam()), bytesMoved(*this, realBytes)};
}

// A view of its input: nothing moves.
OpCost ReshapeOp::getCost(int64_t) { return OpCost{}; }

/// The cost of the ops of `block` (those that know theirs).
static OpCost blockCost(Block &block, int64_t realBytes) {
  OpCost cost;
  for (Operation &op : block)
    if (auto costed = dyn_cast<CostOpInterface>(op))
      cost += costed.getCost(realBytes);
  return cost;
}

OpCost RepeatOp::getCost(int64_t realBytes) {
  OpCost body = blockCost(getBodyBlock(), realBytes);
  double count = double(getCount());
  return OpCost{body.matmulFlops * count, body.otherFlops * count, body.bytes * count};
}

// One operation per element per op of the chain; each input read and the
// result written once.
OpCost FusedOp::getCost(int64_t realBytes) {
  double ops = 0;
  for (Operation &op : getBodyBlock().without_terminator())
    if (!isa<ConstantOp>(op))
      ++ops;
  return OpCost{0, ops * elements(getResult()), bytesMoved(*this, realBytes)};
}
