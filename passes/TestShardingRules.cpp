//===- TestShardingRules.cpp - print each op's sharding rule --------------===//
//
// For tests: the rule an op's ShardingRuleOpInterface gives, written on the
// op as a `sharding_rule` string (Shardy's op_sharding_rule_registry.mlir
// checks its rules the same way), so each rule is tested on its own.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "llvm/ADT/StringExtras.h"

namespace dtl {
#define GEN_PASS_DEF_TESTSHARDINGRULES
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// Loop n is named i, j, k, ... (then l0, l1, ... past z).
std::string loopName(unsigned n) {
  return n < 18 ? std::string(1, char('i' + n)) : "l" + std::to_string(n);
}

/// `[i, 1, k]`: the loop indexing each dimension, or 1 where none does.
std::string dims(AffineMap map) {
  SmallVector<std::string> names;
  for (AffineExpr e : map.getResults())
    names.push_back(isa<AffineDimExpr>(e) ? loopName(cast<AffineDimExpr>(e).getPosition())
                                          : std::string("1"));
  return "[" + llvm::join(names, ", ") + "]";
}

/// `([i, k], [k, j]) -> ([i, j]) sum={k} whole={} linear={0, 1}`, with
/// ` combined={...}` for combined loops, ` shards={j | 3}` for loops split
/// only into a number of shards dividing a count, and ` additive` when
/// partial sums of every operand flow through.
std::string describe(ShardingRuleOpInterface op) {
  SmallVector<AffineMap> maps = op.getIndexingMaps();
  unsigned operands = op->getNumOperands();
  SmallVector<std::string> ins, outs;
  for (auto [i, map] : llvm::enumerate(maps))
    (i < operands ? ins : outs).push_back(dims(map));
  SmallVector<std::string> sum, whole, combined;
  for (auto [n, kind] : llvm::enumerate(op.getLoopKinds())) {
    if (kind == LoopKind::Sum)
      sum.push_back(loopName(n));
    if (kind == LoopKind::Whole)
      whole.push_back(loopName(n));
    if (kind == LoopKind::Combined)
      combined.push_back(loopName(n));
  }
  SmallVector<std::string> divisors;
  for (auto [n, divisor] : llvm::enumerate(op.getLoopShardDivisors()))
    if (divisor)
      divisors.push_back(loopName(n) + " | " + std::to_string(divisor));
  SmallVector<std::string> linear;
  for (unsigned i = 0; i < operands; ++i)
    if (op.isLinearIn(i))
      linear.push_back(std::to_string(i));
  return "(" + llvm::join(ins, ", ") + ") -> (" + llvm::join(outs, ", ") + ") sum={" +
         llvm::join(sum, ", ") + "} whole={" + llvm::join(whole, ", ") + "}" +
         (combined.empty() ? "" : " combined={" + llvm::join(combined, ", ") + "}") +
         (divisors.empty() ? "" : " shards={" + llvm::join(divisors, ", ") + "}") + " linear={" +
         llvm::join(linear, ", ") + "}" + (op.isAdditive() ? " additive" : "");
}

struct TestShardingRules : dtl::impl::TestShardingRulesBase<TestShardingRules> {
  void runOnOperation() override {
    getOperation().walk([](ShardingRuleOpInterface op) {
      op->setAttr("sharding_rule", StringAttr::get(op->getContext(), describe(op)));
    });
  }
};

} // namespace
