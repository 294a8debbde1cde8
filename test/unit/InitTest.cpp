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
