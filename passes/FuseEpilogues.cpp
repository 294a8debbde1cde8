//===- FuseEpilogues.cpp - matmul + broadcast bias -> matmul_bias ---------===//

#include "passes/Passes.h"

namespace dtl {
#define GEN_PASS_DEF_FUSEEPILOGUES
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// The vector a broadcast repeats along every leading dimension, or null.
Value rowBias(Value v) {
  auto broadcast = v.getDefiningOp<BroadcastOp>();
  if (!broadcast)
    return {};
  auto in = cast<RankedTensorType>(broadcast.getInput().getType());
  auto out = cast<RankedTensorType>(broadcast.getResult().getType());
  if (in.getRank() != 1 || broadcast.getDims().front() != out.getRank() - 1 ||
      in.getShape()[0] != out.getShape().back())
    return {};
  return broadcast.getInput();
}

struct FuseEpilogues : dtl::impl::FuseEpiloguesBase<FuseEpilogues> {
  void runOnOperation() override {
    SmallVector<AddOp> adds;
    getOperation().walk([&](AddOp add) { adds.push_back(add); });
    for (AddOp add : adds) {
      for (auto [product, other] :
           {std::pair(add.getLhs(), add.getRhs()), std::pair(add.getRhs(), add.getLhs())}) {
        auto matmul = product.getDefiningOp<MatmulOp>();
        Value bias = rowBias(other);
        if (!matmul || !bias || !matmul->hasOneUse())
          continue;
        OpBuilder b(add);
        auto fused = MatmulBiasOp::create(b, matmul.getLoc(), add.getType(), matmul.getLhs(),
                                          matmul.getRhs(), bias, matmul.getTransposeLhs(),
                                          matmul.getTransposeRhs());
        // The sum's layout, where the partitioner recorded it (--explain).
        if (Attribute layouts = add->getAttr(attr::shardings))
          fused->setAttr(attr::shardings, layouts);
        if (Attribute again = matmul->getAttr(attr::recomputed))
          fused->setAttr(attr::recomputed, again);
        Operation *broadcast = other.getDefiningOp();
        add.replaceAllUsesWith(fused.getResult());
        add.erase();
        matmul.erase();
        if (broadcast->use_empty())
          broadcast->erase();
        break;
      }
    }
  }
};

} // namespace
