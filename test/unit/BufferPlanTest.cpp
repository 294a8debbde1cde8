//===- BufferPlanTest.cpp - live values never share bytes; dead ones do ---===//

#include "codegen/BufferPlan.h"
#include "dialects/dtl/DtlOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

using namespace mlir;

namespace {

const char *kChain = R"mlir(
func.func @f(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<f32> {
  %0 = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %1 = dtl.relu %0 : tensor<64x64xf32>
  %2 = dtl.exp %1 : tensor<64x64xf32>
  %3 = dtl.add %2, %0 : tensor<64x64xf32>
  %4 = dtl.tanh %3 : tensor<64x64xf32>
  %5 = dtl.reduce_sum %4 dims [0, 1] : tensor<64x64xf32> -> tensor<f32>
  return %5 : tensor<f32>
}
)mlir";

TEST(BufferPlan, LiveValuesNeverOverlapAndDeadOnesAreReused) {
  MLIRContext ctx;
  ctx.loadDialect<dtl::DtlDialect, func::FuncDialect>();
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(kChain, &ctx);
  ASSERT_TRUE(module);
  auto fn = *module->getOps<func::FuncOp>().begin();
  dtl::BufferPlan plan = dtl::planBuffers(fn, 4);

  // Live range of each result: [defining op, last user], by position.
  SmallVector<Operation *> ops;
  for (Operation &op : fn.getBody().front())
    ops.push_back(&op);
  auto positionOf = [&](Operation *op) { return llvm::find(ops, op) - ops.begin(); };
  struct Range {
    int64_t start, end, offset, bytes;
  };
  SmallVector<Range> ranges;
  int64_t total = 0;
  for (Operation *op : ops)
    for (Value r : op->getResults()) {
      int64_t end = positionOf(op);
      for (Operation *user : r.getUsers())
        end = std::max<int64_t>(end, positionOf(user));
      int64_t bytes = dtl::bufferBytes(r, 4);
      ranges.push_back({positionOf(op), end, plan.offsets.lookup(r), bytes});
      total += bytes;
      EXPECT_EQ(plan.offsets.lookup(r) % 64, 0);
    }
  for (const Range &a : ranges)
    for (const Range &b : ranges) {
      if (&a == &b || a.end < b.start || b.end < a.start)
        continue; // not live together
      bool apart = a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset;
      EXPECT_TRUE(apart) << "values live together share bytes";
    }
  // %0 lives until %3; %1 dies at %2 and %2 at %3: their bytes come back.
  EXPECT_LT(plan.arenaBytes, total);
  EXPECT_LE(plan.arenaBytes, 3 * 64 * 64 * 4 + 64);
}

// %a dies at %r unless %r runs later, inside %s's kernel, or %a is read
// asynchronously until %s.
const char *kInterleaved = R"mlir(
func.func @g(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<f32> {
  %a = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %r = dtl.relu %a : tensor<64x64xf32>
  %b = dtl.matmul %w, %x : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %s = dtl.add %r, %b : tensor<64x64xf32>
  %t = dtl.reduce_sum %s dims [0, 1] : tensor<64x64xf32> -> tensor<f32>
  return %t : tensor<f32>
}
)mlir";

struct Interleaved {
  MLIRContext ctx;
  OwningOpRef<ModuleOp> module;
  func::FuncOp fn;
  Operation *a, *r, *b, *s;
  Interleaved() {
    ctx.loadDialect<dtl::DtlDialect, func::FuncDialect>();
    module = parseSourceString<ModuleOp>(kInterleaved, &ctx);
    fn = *module->getOps<func::FuncOp>().begin();
    auto op = fn.getBody().front().begin();
    a = &*op++, r = &*op++, b = &*op++, s = &*op;
  }
  bool overlap(const dtl::BufferPlan &plan, Operation *x, Operation *y) {
    int64_t bytes = 64 * 64 * 4, ox = plan.offsets.lookup(x->getResult(0)),
            oy = plan.offsets.lookup(y->getResult(0));
    return ox < oy + bytes && oy < ox + bytes;
  }
};

TEST(BufferPlan, DeadBytesAreReusedWithoutASchedule) {
  Interleaved g;
  ASSERT_TRUE(g.module);
  dtl::BufferPlan plan = dtl::planBuffers(g.fn, 4);
  EXPECT_TRUE(g.overlap(plan, g.a, g.b)) << "%a is dead once %r has run";
}

TEST(BufferPlan, AFusedOpHasNoBufferAndReadsItsOperandsWhereItRuns) {
  Interleaved g;
  ASSERT_TRUE(g.module);
  dtl::Schedule schedule;
  schedule.fusedInto[g.r] = g.s;
  dtl::BufferPlan plan = dtl::planBuffers(g.fn, 4, schedule);
  EXPECT_FALSE(plan.offsets.count(g.r->getResult(0)));
  EXPECT_FALSE(g.overlap(plan, g.a, g.b)) << "%s's kernel reads %a after %b is made";
  EXPECT_FALSE(g.overlap(plan, g.a, g.s));
}

TEST(BufferPlan, AnAsynchronousReadKeepsItsInputAlive) {
  Interleaved g;
  ASSERT_TRUE(g.module);
  dtl::Schedule schedule;
  schedule.readUntil[g.a->getResult(0)] = g.s;
  dtl::BufferPlan plan = dtl::planBuffers(g.fn, 4, schedule);
  EXPECT_FALSE(g.overlap(plan, g.a, g.b)) << "a collective still reads %a while %b is made";
}

} // namespace
