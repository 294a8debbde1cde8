//===- Fusion.cpp - elementwise chains as one loop or kernel --------------===//

#include "codegen/Fusion.h"
#include "codegen/StepEmitter.h"
#include "dialects/dtl/DtlOps.h"

#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace dtl;

std::optional<std::string> dtl::elementwiseBody(Operation *op, StringRef mathNamespace) {
  std::string ns = mathNamespace.str();
  return llvm::TypeSwitch<Operation *, std::optional<std::string>>(op)
      .Case([](ConstantOp c) {
        return "real(" + emit::literal(c.getValue().convertToDouble()) + ")";
      })
      .Case([](AddOp) { return "$0 + $1"; })
      .Case([](SubOp) { return "$0 - $1"; })
      .Case([](MulOp) { return "$0 * $1"; })
      .Case([](DivOp) { return "$0 / $1"; })
      .Case([](NegOp) { return "-$0"; })
      .Case([](ReluOp) { return "$0 > real(0) ? $0 : real(0)"; })
      .Case([](ReluGradOp) { return "$0 > real(0) ? $1 : real(0)"; })
      .Case([](ExpOp) { return "std::exp($0)"; })
      .Case([](LogOp) { return "std::log($0)"; })
      .Case([](TanhOp) { return "std::tanh($0)"; })
      .Case([](SqrtOp) { return "std::sqrt($0)"; })
      .Case([&](GeluOp) { return ns + "::gelu($0)"; })
      .Case([&](GeluGradOp) { return ns + "::geluGrad($0, $1)"; })
      .Default([](Operation *) { return std::nullopt; });
}

Schedule dtl::fuseElementwise(func::FuncOp fn) {
  Block &body = fn.getBody().front();
  Schedule schedule;
  for (Operation &op : body) {
    if (!isElementwise(&op) || !op.getResult(0).hasOneUse())
      continue;
    Operation *user = *op.getResult(0).getUsers().begin();
    if (user->getBlock() != &body || !isElementwise(user))
      continue;
    bool updateBetween = false;
    for (Operation *it = op.getNextNode(); it != user; it = it->getNextNode())
      updateBetween |= isa<AdamwUpdateOp, SgdUpdateOp>(it);
    if (!updateBetween)
      schedule.fusedInto[&op] = user;
  }
  return schedule;
}

std::string dtl::fusedExpression(Operation *root, const Schedule &schedule,
                                 StringRef mathNamespace, function_ref<std::string(Value)> leaf) {
  std::string body = *elementwiseBody(root, mathNamespace);
  for (unsigned k = 0; k < root->getNumOperands(); ++k) {
    Value v = root->getOperand(k);
    Operation *producer = v.getDefiningOp();
    std::string sub = producer && schedule.fusedInto.lookup(producer) == root
                          ? "(" + fusedExpression(producer, schedule, mathNamespace, leaf) + ")"
                          : leaf(v);
    std::string placeholder = "$" + std::to_string(k);
    for (size_t at = 0; (at = body.find(placeholder, at)) != std::string::npos;
         at += sub.size())
      body.replace(at, placeholder.size(), sub);
  }
  return body;
}
