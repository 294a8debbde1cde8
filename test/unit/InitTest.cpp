//===- InitTest.cpp - every mesh gets the same model ----------------------===//

#include "dtlrt/Init.h"

#include <gtest/gtest.h>

#include <vector>

using namespace dtlrt;

namespace {

TensorSpec spec(std::vector<int64_t> local, std::vector<Axes> dimAxes) {
  TensorSpec t;
  t.role = Role::Param;
  t.name = "w";
  t.globalShape = {4, 6};
  t.localShape = std::move(local);
  t.dimAxes = std::move(dimAxes);
  t.init = Init::Normal;
  t.initA = 0.0;
  t.initB = 0.02;
  return t;
}

TEST(Init, ShardsOfAnyMeshAssembleTheReplicatedTensor) {
  TensorSpec whole = spec({4, 6}, {{}, {}});
  Context single({1}, 0);
  std::vector<float> reference(24);
  initParam(whole, 7, single, reference.data());

  // A 2x3 mesh; rows split over axis 0, columns over axis 1.
  TensorSpec sharded = spec({2, 2}, {{0}, {1}});
  std::vector<float> assembled(24, -1);
  for (int rank = 0; rank < 6; ++rank) {
    Context ctx({2, 3}, rank);
    std::vector<float> local(4);
    initParam(sharded, 7, ctx, local.data());
    forEachLocal(sharded, ctx, [&](int64_t l, int64_t g) { assembled[g] = local[l]; });
  }
  EXPECT_EQ(assembled, reference);
}

TEST(Init, ColumnsOverTwoAxesMajorToMinor) {
  // Columns split over (axis 0, axis 1) of a 2x3 mesh: 6 column blocks of 1.
  TensorSpec sharded = spec({4, 1}, {{}, {0, 1}});
  for (int rank = 0; rank < 6; ++rank) {
    Context ctx({2, 3}, rank);
    std::vector<int64_t> globals;
    forEachLocal(sharded, ctx, [&](int64_t, int64_t g) { globals.push_back(g); });
    ASSERT_EQ(globals.size(), 4u);
    EXPECT_EQ(globals[0], rank); // row 0, column = index along (axis 0, axis 1) = rank
    EXPECT_EQ(globals[1], 6 + rank);
  }
}

TEST(Init, InterleavedColumnsMapToTheirPlaceAsDeclared) {
  // Columns [q0 q1 q2 q3 | k0 k1] (pieces 4 and 2) stored as 2 blocks over
  // axis 0: block r is q's r-th half then k's r-th half.
  TensorSpec t = spec({4, 3}, {{}, {0}});
  t.interleaveDim = 1;
  t.interleaveBlocks = 2;
  t.interleavePieces = {4, 2};
  std::vector<std::vector<int64_t>> columns;
  for (int rank = 0; rank < 2; ++rank) {
    Context ctx({2}, rank);
    std::vector<int64_t> row0;
    forEachLocal(t, ctx, [&](int64_t local, int64_t g) {
      if (local < 3)
        row0.push_back(g);
    });
    columns.push_back(row0);
  }
  EXPECT_EQ(columns[0], (std::vector<int64_t>{0, 1, 4}));
  EXPECT_EQ(columns[1], (std::vector<int64_t>{2, 3, 5}));
  // Runs: stored position 1 is declared 1 with 1 more of q's share after it.
  EXPECT_EQ(t.declaredRun(1), (std::pair<int64_t, int64_t>{1, 1}));
  EXPECT_EQ(t.declaredRun(5), (std::pair<int64_t, int64_t>{5, 1}));
}

TEST(Init, UnevenStagesSkipTheirHoles) {
  // Layers 0-2 on stage 0, 3-4 on stage 1, each with 3 slots: stage 1's
  // last slot is a hole, in no declared place.
  TensorSpec t = spec({3, 2}, {{0}, {}});
  t.globalShape = {5, 2};
  t.interleaveDim = 0;
  t.stageLayers = {3, 2};
  EXPECT_EQ(t.declaredRun(1), (std::pair<int64_t, int64_t>{1, 2}));
  EXPECT_EQ(t.declaredRun(3), (std::pair<int64_t, int64_t>{3, 2}));
  EXPECT_EQ(t.declaredRun(5), (std::pair<int64_t, int64_t>{-1, 1}));
  Context ctx({2}, 1);
  std::vector<std::pair<int64_t, int64_t>> seen; // (local, declared)
  forEachLocal(t, ctx, [&](int64_t local, int64_t g) { seen.push_back({local, g}); });
  EXPECT_EQ(seen, (std::vector<std::pair<int64_t, int64_t>>{{0, 6}, {1, 7}, {2, 8}, {3, 9}}));
}

TEST(Init, DifferentNamesDifferentValues) {
  TensorSpec a = spec({4, 6}, {{}, {}}), b = a;
  b.name = "other";
  Context ctx({1}, 0);
  std::vector<float> va(24), vb(24);
  initParam(a, 7, ctx, va.data());
  initParam(b, 7, ctx, vb.data());
  EXPECT_NE(va, vb);
}

} // namespace
