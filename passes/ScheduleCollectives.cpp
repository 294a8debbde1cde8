//===- ScheduleCollectives.cpp - where each collective is awaited ---------===//
//
// A communicating collective starts where it stands; compute waits for it
// at a dtl.collective_wait: at once (the CPU target), or before the first op
// that reads its result (the CUDA target: the communication stream overlaps
// the compute in between). Views of the result move after the wait.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace dtl {
#define GEN_PASS_DEF_SCHEDULECOLLECTIVES
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

bool communicates(Operation *op) {
  return isa<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllGatherOp, shard::AllToAllOp,
             shard::SendOp, shard::RecvOp>(op);
}

/// The views of `v` (transitively) in its block, in block order.
SmallVector<Operation *> viewsOf(Value v) {
  SmallVector<Operation *> views;
  SmallVector<Value> work{v};
  while (!work.empty()) {
    Value next = work.pop_back_val();
    for (Operation *user : next.getUsers())
      if (auto view = dyn_cast<ViewLikeOpInterface>(user);
          view && view.getViewSource() == next && user->getBlock() == v.getParentBlock()) {
        views.push_back(user);
        work.push_back(user->getResult(0));
      }
  }
  llvm::sort(views, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return views;
}

struct ScheduleCollectives : dtl::impl::ScheduleCollectivesBase<ScheduleCollectives> {
  using ScheduleCollectivesBase::ScheduleCollectivesBase;

  void runOnOperation() override {
    SmallVector<Operation *> collectives;
    getOperation().walk([&](Operation *op) {
      if (communicates(op))
        collectives.push_back(op);
    });
    int64_t slot = 0;
    for (Operation *op : collectives) {
      op->setAttr(attr::slot, IntegerAttr::get(IntegerType::get(op->getContext(), 64), slot++));
      Value result = op->getResult(0);
      SmallVector<Operation *> views = viewsOf(result);
      // The first op of the block that reads the result or a view of it (the
      // ancestor in this block of a reader in a nested region).
      Operation *firstReader = op->getBlock()->getTerminator();
      if (overlap) {
        auto readers = [&](Value v) {
          for (Operation *user : v.getUsers()) {
            Operation *at = op->getBlock()->findAncestorOpInBlock(*user);
            if (at && !llvm::is_contained(views, at) && at->isBeforeInBlock(firstReader))
              firstReader = at;
          }
        };
        readers(result);
        for (Operation *view : views)
          readers(view->getResult(0));
      } else {
        firstReader = op->getNextNode();
      }
      OpBuilder b(firstReader);
      auto wait = CollectiveWaitOp::create(b, op->getLoc(), result.getType(), result,
                                           ValueRange{op->getOperand(0)});
      result.replaceAllUsesExcept(wait.getResult(), wait);
      // Views are computed from the awaited buffer.
      Operation *last = wait;
      for (Operation *view : views) {
        view->moveAfter(last);
        last = view;
      }
    }
  }
};

} // namespace
