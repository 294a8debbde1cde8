//===- PlanBuffersTest.cpp - live values never share bytes; dead ones do --===//
//
// dtl-plan-buffers on modules of every shape the execution stage has
// (chains, fused loops, repeats, collectives awaited late), checked against
// live ranges computed here from the IR by hand: any two values whose
// ranges meet must get disjoint bytes.
//
//===----------------------------------------------------------------------===//

#include "dialects/dtl/Contract.h"
#include "passes/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace mlir;

namespace {

struct Planned {
  MLIRContext ctx;
  OwningOpRef<ModuleOp> module;

  Planned(const char *source, bool fuse, bool overlap = false) {
    ctx.loadDialect<dtl::DtlDialect, func::FuncDialect, shard::ShardDialect>();
    module = parseSourceString<ModuleOp>(source, &ctx);
    if (!module)
      return;
    PassManager pm(&ctx);
    if (fuse)
      pm.addPass(dtl::createFuseElementwise());
    pm.addPass(dtl::createScheduleCollectives(dtl::ScheduleCollectivesOptions{overlap}));
    pm.addPass(dtl::createPlanBuffers());
    if (failed(pm.run(*module)))
      module = nullptr;
  }

  func::FuncOp fn() { return *module->getOps<func::FuncOp>().begin(); }

  /// Where `v` lives in the arena (offset, bytes), or nothing.
  static std::optional<std::pair<int64_t, int64_t>> placeOf(Value v) {
    auto result = dyn_cast<OpResult>(v);
    if (!result)
      return std::nullopt;
    auto place = cast<dtl::PlaceAttr>(
        result.getOwner()->getAttrOfType<ArrayAttr>(dtl::attr::place)[result.getResultNumber()]);
    if (place.getKind() != dtl::PlaceKind::arena)
      return std::nullopt;
    return std::make_pair(place.getIndex(), dtl::tensorBytes(v.getType(), 4));
  }
};

/// Live ranges by hand, over the ops of a block in order (positions
/// counting into repeat bodies): a value lives from its op to the last op
/// that reads it or a view of it; a read inside a nested op counts at the
/// end of that op.
struct Ranges {
  DenseMap<Operation *, int64_t> begin, end;
  struct Range {
    Value value;
    int64_t start, end;
  };
  std::vector<Range> ranges;

  explicit Ranges(func::FuncOp fn) {
    int64_t next = 0;
    number(fn.getBody().front(), next);
    fn.walk([&](Operation *op) {
      if (isa<dtl::FusedOp>(op->getParentOp()))
        return;
      for (Value r : op->getResults())
        if (Planned::placeOf(r))
          ranges.push_back({r, begin[op], lastRead(r, begin[op])});
    });
  }

  void number(Block &block, int64_t &next) {
    for (Operation &op : block) {
      begin[&op] = next++;
      if (auto repeat = dyn_cast<dtl::RepeatOp>(op))
        number(repeat.getBodyBlock(), next);
      end[&op] = next - 1;
    }
  }

  int64_t lastRead(Value v, int64_t last) {
    for (OpOperand &use : v.getUses()) {
      Operation *user = v.getParentBlock()->findAncestorOpInBlock(*use.getOwner());
      last = std::max(last, end[user]);
      if (auto view = dyn_cast<ViewLikeOpInterface>(user); view && view.getViewSource() == v)
        last = std::max(last, lastRead(user->getResult(0), last));
    }
    return last;
  }

  /// Every pair of values live together has disjoint bytes; returns the sum
  /// of all values' bytes.
  int64_t checkDisjoint() {
    int64_t total = 0;
    for (const Range &a : ranges) {
      auto pa = *Planned::placeOf(a.value);
      EXPECT_EQ(pa.first % 64, 0) << "buffers start on cache lines";
      total += pa.second;
      for (const Range &b : ranges) {
        if (&a == &b || a.end < b.start || b.end < a.start)
          continue;
        auto pb = *Planned::placeOf(b.value);
        EXPECT_TRUE(pa.first + pa.second <= pb.first || pb.first + pb.second <= pa.first)
            << "values live together share bytes";
      }
    }
    return total;
  }
};

const char *kChain = R"mlir(
func.func @f(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<f32> {
  %0 = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %1 = dtl.matmul %0, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %2 = dtl.matmul %1, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %3 = dtl.add %2, %0 : tensor<64x64xf32>
  %4 = dtl.tanh %3 : tensor<64x64xf32>
  %5 = dtl.reduce_sum %4 dims [0, 1] : tensor<64x64xf32> -> tensor<f32>
  return %5 : tensor<f32>
}
)mlir";

TEST(PlanBuffers, LiveValuesNeverOverlapAndDeadOnesAreReused) {
  Planned p(kChain, /*fuse=*/false);
  ASSERT_TRUE(p.module);
  Ranges ranges(p.fn());
  int64_t total = ranges.checkDisjoint();
  int64_t arena = p.fn()->getAttrOfType<IntegerAttr>(dtl::attr::arenaBytes).getInt();
  // %1 dies at %2, %2 at %3: their bytes come back.
  EXPECT_LT(arena, total);
}

TEST(PlanBuffers, AFusedChainHasOneBufferAndReadsItsInputsWhereItRuns) {
  Planned p(kChain, /*fuse=*/true);
  ASSERT_TRUE(p.module);
  int fused = 0;
  p.fn().walk([&](dtl::FusedOp op) {
    ++fused;
    EXPECT_EQ(op.getBodyBlock().getOperations().size(), 3u) << "add and tanh, and the yield";
  });
  EXPECT_EQ(fused, 1);
  Ranges ranges(p.fn());
  ranges.checkDisjoint();
}

// A collective read asynchronously keeps its input alive until its wait.
const char *kCollective = R"mlir(
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @g(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<64x64xf32> {
    %a = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %s = shard.all_reduce %a on @grid grid_axes = [0] : tensor<64x64xf32> -> tensor<64x64xf32>
    %b = dtl.matmul %w, %x : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %c = dtl.matmul %b, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %d = dtl.matmul %s, %c : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    return %d : tensor<64x64xf32>
  }
}
)mlir";

TEST(PlanBuffers, AnAsynchronousCollectiveKeepsItsInputAlive) {
  int64_t arena[2];
  for (bool overlap : {false, true}) {
    Planned p(kCollective, /*fuse=*/false, overlap);
    ASSERT_TRUE(p.module);
    Ranges ranges(p.fn());
    ranges.checkDisjoint();
    arena[overlap] = p.fn()->getAttrOfType<IntegerAttr>(dtl::attr::arenaBytes).getInt();
    if (!overlap)
      continue;
    Value a = p.fn().getBody().front().front().getResult(0), c;
    p.fn().walk([&](dtl::MatmulOp op) {
      if (!c && op.getLhs().getDefiningOp<dtl::MatmulOp>())
        c = op.getResult();
    });
    auto pa = *Planned::placeOf(a), pc = *Planned::placeOf(c);
    EXPECT_TRUE(pa.first + pa.second <= pc.first || pc.first + pc.second <= pa.first)
        << "%a is read by the all-reduce until %d awaits it, so %c cannot take its bytes";
  }
  // Awaited at once, %a dies at the all-reduce: one buffer fewer at the peak.
  EXPECT_LT(arena[false], arena[true]);
}

// A repeat's body lives within one iteration; what it yields as a stacked
// result is written into its layer's slice.
const char *kRepeat = R"mlir(
func.func @r(%x: tensor<8x16xf32>, %w: tensor<4x16x16xf32>) -> (tensor<8x16xf32>, tensor<4x8x16xf32>) {
  %h, %saved = dtl.repeat 4 carry(%x : tensor<8x16xf32>) stacked(%w : tensor<4x16x16xf32>)
      -> (tensor<8x16xf32>, tensor<4x8x16xf32>) {
  ^bb0(%i: index, %xi: tensor<8x16xf32>, %wi: tensor<16x16xf32>):
    %a = dtl.matmul %xi, %wi : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
    %b = dtl.tanh %a : tensor<8x16xf32>
    %c = dtl.matmul %b, %wi : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
    dtl.yield %c, %b : tensor<8x16xf32>, tensor<8x16xf32>
  }
  %y = dtl.matmul %h, %h {transpose_rhs} : tensor<8x16xf32>, tensor<8x16xf32> -> tensor<8x8xf32>
  %z = dtl.matmul %y, %h : tensor<8x8xf32>, tensor<8x16xf32> -> tensor<8x16xf32>
  return %z, %saved : tensor<8x16xf32>, tensor<4x8x16xf32>
}
)mlir";

TEST(PlanBuffers, ARepeatBodyLivesInOneIterationAndWritesItsSlices) {
  Planned p(kRepeat, /*fuse=*/false);
  ASSERT_TRUE(p.module);
  Ranges ranges(p.fn());
  ranges.checkDisjoint();
  p.fn().walk([&](dtl::TanhOp tanh) {
    auto place = cast<dtl::PlaceAttr>(tanh->getAttrOfType<ArrayAttr>(dtl::attr::place)[0]);
    EXPECT_EQ(place.getKind(), dtl::PlaceKind::slice);
    EXPECT_EQ(place.getIndex(), 0);
  });
}

} // namespace
