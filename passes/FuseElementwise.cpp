//===- FuseElementwise.cpp - elementwise chains -> dtl.fused --------------===//
//
// An elementwise op (or a constant) whose only use is a later elementwise op
// of the same block is computed inside that op's loop; each chain becomes one
// dtl.fused whose body holds the chain on one element (rank-0 tensors).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/SCF/IR/SCF.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace dtl {
#define GEN_PASS_DEF_FUSEELEMENTWISE
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

bool isElementwise(Operation *op) {
  return op->hasTrait<OpTrait::Elementwise>() || isa<ConstantOp>(op);
}

/// Each op computed inside the loop of a later one: the user it is fused into.
DenseMap<Operation *, Operation *> fusedInto(Block &block) {
  DenseMap<Operation *, Operation *> into;
  for (Operation &op : block) {
    if (!isElementwise(&op) || !op.getResult(0).hasOneUse())
      continue;
    Operation *user = *op.getResult(0).getUsers().begin();
    if (user->getBlock() != &block || !isElementwise(user))
      continue;
    // An update between could overwrite what the fused op reads late.
    bool updateBetween = false;
    for (Operation *it = op.getNextNode(); it != user; it = it->getNextNode())
      updateBetween |= isa<AdamwUpdateOp, SgdUpdateOp>(it);
    if (!updateBetween)
      into[&op] = user;
  }
  return into;
}

/// Replaces `root` and the ops fused into it by one dtl.fused.
void fuse(Operation *root, const DenseMap<Operation *, Operation *> &into) {
  // The chain, in block order, and its leaves (values made outside it).
  llvm::SetVector<Operation *> chain;
  SmallVector<Operation *> work{root};
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    if (!chain.insert(op))
      continue;
    for (Value v : op->getOperands())
      if (Operation *producer = v.getDefiningOp(); producer && into.lookup(producer) == op)
        work.push_back(producer);
  }
  SmallVector<Operation *> ordered(chain.begin(), chain.end());
  llvm::sort(ordered, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  llvm::SetVector<Value> leaves;
  for (Operation *op : ordered)
    for (Value v : op->getOperands())
      if (!chain.contains(v.getDefiningOp()))
        leaves.insert(v);

  OpBuilder b(root);
  auto fused =
      FusedOp::create(b, root->getLoc(), root->getResult(0).getType(), leaves.getArrayRef());
  if (Attribute layouts = root->getAttr(attr::shardings))
    fused->setAttr(attr::shardings, layouts);
  if (Attribute again = root->getAttr(attr::recomputed))
    fused->setAttr(attr::recomputed, again);
  Block *body = new Block();
  fused.getBody().push_back(body);
  auto element = [](Type t) {
    return RankedTensorType::get({}, cast<RankedTensorType>(t).getElementType());
  };
  IRMapping mapping;
  for (Value leaf : leaves)
    mapping.map(leaf, body->addArgument(element(leaf.getType()), leaf.getLoc()));
  OpBuilder inside = OpBuilder::atBlockEnd(body);
  for (Operation *op : ordered) {
    Operation *clone = inside.clone(*op, mapping);
    clone->removeAttr(attr::shardings);
    clone->removeAttr(attr::recomputed);
    clone->getResult(0).setType(element(op->getResult(0).getType()));
  }
  YieldOp::create(inside, root->getLoc(), mapping.lookup(root->getResult(0)));
  root->getResult(0).replaceAllUsesWith(fused.getResult());
  for (Operation *op : llvm::reverse(ordered))
    op->erase();
}

struct FuseElementwise : dtl::impl::FuseElementwiseBase<FuseElementwise> {
  void runOnOperation() override {
    SmallVector<Block *> blocks;
    getOperation().walk([&](Operation *op) {
      if (isa<func::FuncOp, RepeatOp, scf::IndexSwitchOp>(op))
        for (Region &region : op->getRegions())
          for (Block &block : region)
            blocks.push_back(&block);
    });
    for (Block *block : blocks) {
      DenseMap<Operation *, Operation *> into = fusedInto(*block);
      SmallVector<Operation *> roots;
      for (Operation &op : *block)
        if (isElementwise(&op) && !into.count(&op))
          roots.push_back(&op);
      for (Operation *root : roots)
        fuse(root, into);
    }
  }
};

} // namespace
