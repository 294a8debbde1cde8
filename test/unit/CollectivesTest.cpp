//===- CollectivesTest.cpp - collectives in pieces, on 2 ranks ------------===//
//
// MPI takes int counts, so a collective over more than 2^31 elements goes in
// pieces. Run under `mpirun -np 2` (ctest does): each collective, with at
// most 3 or 1 elements per MPI call, gives exactly what one call gives.
//
//===----------------------------------------------------------------------===//

#include "dtlrt/Context.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <numeric>
#include <vector>

using namespace dtlrt;

namespace {

int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

/// Every collective's result on this rank, with `maxPerCall` elements per call.
std::vector<std::vector<float>> collectives(Context &ctx, int64_t maxPerCall) {
  Context::setMaxElementsPerCall(maxPerCall);
  const Axes dp{0};
  auto values = [&](int64_t n) {
    std::vector<float> v(n);
    std::iota(v.begin(), v.end(), float(100 * rank()));
    return v;
  };
  std::vector<std::vector<float>> out;
  out.push_back(values(11));
  ctx.allReduceSum(out.back().data(), 11, dp);
  std::vector<float> gathered(2 * 5 * 3);
  ctx.allGather(values(15).data(), gathered.data(), {5, 3}, 0, dp);
  out.push_back(gathered);
  std::vector<float> scattered(3 * 7);
  ctx.reduceScatterSum(values(42).data(), scattered.data(), {6, 7}, 0, dp);
  out.push_back(scattered);
  std::vector<float> moved(4 * 6);
  ctx.allToAll(values(24).data(), moved.data(), {4, 6}, 1, 0, dp);
  out.push_back(moved);
  // A stage's activation forwards and its gradient back: rank 0 sends
  // first, rank 1 receives first.
  std::vector<float> forward = values(13), back(13);
  if (rank() == 0) {
    ctx.send(forward.data(), 13, 1, dp);
    ctx.recv(back.data(), 13, 1, dp);
  } else {
    ctx.recv(back.data(), 13, 0, dp);
    ctx.send(forward.data(), 13, 0, dp);
  }
  out.push_back(back);
  Context::setMaxElementsPerCall(INT32_MAX);
  return out;
}

TEST(Collectives, PiecesCoverTheCountOnce) {
  std::vector<std::pair<int64_t, int64_t>> calls;
  forEachPiece(10, 3, [&](int64_t offset, int64_t n) { calls.push_back({offset, n}); });
  EXPECT_EQ(calls, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 3}, {6, 3}, {9, 1}}));
  calls.clear();
  forEachPiece(0, 3, [&](int64_t offset, int64_t n) { calls.push_back({offset, n}); });
  EXPECT_EQ(calls, (std::vector<std::pair<int64_t, int64_t>>{{0, 0}}));
}

TEST(Collectives, InPiecesTheyGiveWhatOneCallGives) {
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  ASSERT_EQ(world, 2) << "run under mpirun -np 2";
  Context ctx({2}, rank());
  std::vector<std::vector<float>> whole = collectives(ctx, INT32_MAX);
  EXPECT_EQ(whole[0][10], 10.f + 110.f) << "the sum over both ranks";
  EXPECT_EQ(whole[4][12], float(100 * (1 - rank()) + 12)) << "the other rank's values";
  EXPECT_EQ(collectives(ctx, 3), whole);
  EXPECT_EQ(collectives(ctx, 1), whole);
}

/// MemAvailable from /proc/meminfo, in bytes (0 when unknown).
int64_t availableMemory() {
  std::FILE *f = std::fopen("/proc/meminfo", "r");
  char line[256];
  long long kib = 0;
  while (f && std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %lld kB", &kib) == 1)
      break;
  if (f)
    std::fclose(f);
  return int64_t(kib) * 1024;
}

// More than 2^31 bytes in one all-reduce, in pieces of 2^28 elements, where
// the machine has the memory (about 5 GiB over both ranks).
TEST(Collectives, MoreThanTwoGigabytesAreReducedWhole) {
  int64_t available = availableMemory(), all = 0;
  MPI_Allreduce(&available, &all, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
  if (all < (int64_t(12) << 30))
    GTEST_SKIP() << "needs 12 GiB of available memory, this machine has " << (all >> 20) << " MiB";
  Context ctx({2}, rank());
  const Axes dp{0};
  const int64_t n = (int64_t(1) << 29) + 3; // 2 GiB + 12 bytes of floats
  Context::setMaxElementsPerCall(int64_t(1) << 28);
  std::vector<float> data(n, float(rank() + 1));
  data[n - 1] = 10.f * float(rank());
  ctx.allReduceSum(data.data(), n, dp);
  EXPECT_EQ(data[0], 3.f);
  EXPECT_EQ(data[n / 2], 3.f);
  EXPECT_EQ(data[n - 1], 10.f);
  Context::setMaxElementsPerCall(INT32_MAX);
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int failed = RUN_ALL_TESTS();
  MPI_Finalize();
  return failed;
}
