//===- MarkInPlace.cpp - optimizer updates over their own state -----------===//

#include "passes/Passes.h"

namespace dtl {
#define GEN_PASS_DEF_MARKINPLACE
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// The param and state an update reads and replaces.
SmallVector<Value> stateOf(Operation *update) {
  if (auto adamw = dyn_cast<AdamwUpdateOp>(update))
    return {adamw.getParam(), adamw.getM(), adamw.getV()};
  auto sgd = cast<SgdUpdateOp>(update);
  return {sgd.getParam(), sgd.getMomentumBuf()};
}

struct MarkInPlace : dtl::impl::MarkInPlaceBase<MarkInPlace> {
  void runOnOperation() override {
    getOperation().walk([&](func::FuncOp fn) {
      Block &body = fn.getBody().front();
      auto ret = cast<func::ReturnOp>(body.getTerminator());
      for (Operation &op : body) {
        if (!isa<AdamwUpdateOp, SgdUpdateOp>(op))
          continue;
        // The update reads each element before writing it; nothing after it
        // may read the old param or state, and its results are only returned.
        bool lastReader = llvm::all_of(stateOf(&op), [&](Value state) {
          return isa<BlockArgument>(state) && llvm::all_of(state.getUsers(), [&](Operation *user) {
                   return user == &op || user->isBeforeInBlock(&op);
                 });
        });
        bool onlyReturned = llvm::all_of(op.getResults(), [&](Value r) {
          return r.hasOneUse() && *r.getUsers().begin() == ret;
        });
        if (lastReader && onlyReturned)
          op.setAttr(attr::inPlace, UnitAttr::get(&getContext()));
      }
    });
  }
};

} // namespace
