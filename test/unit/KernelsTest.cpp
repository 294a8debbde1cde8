//===- KernelsTest.cpp - CPU kernels against naive references -------------===//

#include "dtlrt/Kernels.h"
#include "dtlrt/Data.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

using namespace dtlrt;

namespace {

std::vector<double> iota(int64_t n, double scale = 0.1) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = std::sin(1.0 + i) * scale * (i % 7 + 1);
  return v;
}

TEST(Kernels, MatmulAllTransposes) {
  const int64_t m = 3, n = 4, k = 5;
  std::vector<double> a = iota(m * k), b = iota(k * n, 0.3);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Store op(a) and op(b) transposed when the flag says so.
      std::vector<double> as(m * k), bs(k * n);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t p = 0; p < k; ++p)
          as[ta ? p * m + i : i * k + p] = a[i * k + p];
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j)
          bs[tb ? j * k + p : p * n + j] = b[p * n + j];
      std::vector<double> c(m * n);
      matmul(ta, tb, m, n, k, as.data(), bs.data(), static_cast<const double *>(nullptr), c.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double expected = 0;
          for (int64_t p = 0; p < k; ++p)
            expected += a[i * k + p] * b[p * n + j];
          EXPECT_NEAR(c[i * n + j], expected, 1e-12) << ta << tb;
        }
    }
}

TEST(Kernels, BroadcastRepeatsAlongZeroStrides) {
  // [3] -> [2, 3] (new leading dim), strides {0, 1}.
  std::vector<float> in = {1, 2, 3}, out(6);
  const int64_t shape[] = {2, 3}, strides[] = {0, 1};
  broadcast(in.data(), out.data(), shape, strides, 2);
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 1, 2, 3}));
  // [2, 1] -> [2, 3] (size-1 dim repeated), strides {1, 0}.
  std::vector<float> column = {5, 7};
  const int64_t columnStrides[] = {1, 0};
  broadcast(column.data(), out.data(), shape, columnStrides, 2);
  EXPECT_EQ(out, (std::vector<float>{5, 5, 5, 7, 7, 7}));
}

TEST(Kernels, PlaceIsTheInverseOfAStridedGather) {
  // A [2, 6] whole, viewed [2 rows, 2 blocks, 3, 1]: piece 1 of an
  // interleaved split (1 column of each block at offset 2) and back.
  std::vector<float> whole = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, piece(4);
  const int64_t shape[] = {2, 2, 1, 1}, strides[] = {6, 3, 1, 1};
  broadcast(whole.data() + 2, piece.data(), shape, strides, 4);
  EXPECT_EQ(piece, (std::vector<float>{2, 5, 8, 11}));
  std::vector<float> placed(12, -1);
  place(piece.data(), placed.data() + 2, shape, strides, 4);
  EXPECT_EQ(placed, (std::vector<float>{-1, -1, 2, -1, -1, 5, -1, -1, 8, -1, -1, 11}));
}

TEST(Kernels, ReduceSumOverAnyDims) {
  const int64_t shape[] = {2, 3, 4};
  std::vector<double> in = iota(24);
  auto reference = [&](bool r0, bool r1, bool r2) {
    std::vector<double> out;
    for (int i = 0; i < (r0 ? 1 : 2); ++i)
      for (int j = 0; j < (r1 ? 1 : 3); ++j)
        for (int k = 0; k < (r2 ? 1 : 4); ++k) {
          double s = 0;
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 3; ++b)
              for (int c = 0; c < 4; ++c)
                if ((r0 || a == i) && (r1 || b == j) && (r2 || c == k))
                  s += in[(a * 3 + b) * 4 + c];
          out.push_back(s);
        }
    return out;
  };
  for (int mask = 1; mask < 8; ++mask) {
    bool reduced[] = {bool(mask & 1), bool(mask & 2), bool(mask & 4)};
    std::vector<double> expected = reference(reduced[0], reduced[1], reduced[2]);
    std::vector<double> out(expected.size());
    reduceSum(in.data(), out.data(), shape, reduced, 3);
    for (size_t i = 0; i < out.size(); ++i)
      EXPECT_NEAR(out[i], expected[i], 1e-12) << "mask " << mask;
  }
}

TEST(Kernels, CrossEntropyMatchesDefinitionAndIgnoresNegativeLabels) {
  std::vector<double> logits = {1.0, 2.0, 3.0, 0.5, 0.5, 0.5};
  std::vector<int32_t> labels = {2, -1};
  std::vector<double> out(2);
  crossEntropy(logits.data(), labels.data(), out.data(), 2, 3);
  double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(out[0], lse - 3.0, 1e-12);
  EXPECT_EQ(out[1], 0.0);
}

TEST(Kernels, CrossEntropyGradMatchesFiniteDifferences) {
  const int64_t batch = 3, classes = 4;
  std::vector<double> logits = iota(batch * classes, 1.0), grad = {0.5, -1.0, 2.0};
  std::vector<int32_t> labels = {0, 3, 1};
  std::vector<double> analytic(batch * classes);
  crossEntropyGrad(logits.data(), labels.data(), grad.data(), analytic.data(), batch, classes);
  auto weightedLoss = [&](const std::vector<double> &l) {
    std::vector<double> out(batch);
    crossEntropy(l.data(), labels.data(), out.data(), batch, classes);
    double s = 0;
    for (int64_t b = 0; b < batch; ++b)
      s += grad[b] * out[b];
    return s;
  };
  for (int64_t i = 0; i < batch * classes; ++i) {
    std::vector<double> plus = logits, minus = logits;
    plus[i] += 1e-6;
    minus[i] -= 1e-6;
    EXPECT_NEAR(analytic[i], (weightedLoss(plus) - weightedLoss(minus)) / 2e-6, 1e-8);
  }
}

// Megatron's vocab-parallel cross-entropy: the classes in two blocks, each
// block's parts gathered ([2 ranks, batch], rank-major as an all-gather
// lays them out) and combined, give the loss and gradient of the whole row.
TEST(Kernels, CrossEntropyOverSplitClassesMatchesTheWholeRow) {
  const int64_t batch = 3, classes = 6, ranks = 2, block = classes / ranks;
  std::vector<double> logits = iota(batch * classes, 0.7), grad = {0.5, -1.0, 2.0};
  std::vector<int32_t> labels = {1, -1, 4};
  std::vector<double> loss(batch), dlogits(batch * classes);
  crossEntropy(logits.data(), labels.data(), loss.data(), batch, classes);
  crossEntropyGrad(logits.data(), labels.data(), grad.data(), dlogits.data(), batch, classes);

  std::vector<std::vector<double>> blocks(ranks, std::vector<double>(batch * block));
  std::vector<double> gathered(2 * ranks * batch);
  for (int64_t r = 0; r < ranks; ++r) {
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < block; ++c)
        blocks[r][b * block + c] = logits[b * classes + r * block + c];
    crossEntropyPartial(blocks[r].data(), labels.data(), gathered.data() + 2 * r * batch, batch,
                        block, r * block, classes);
  }
  std::vector<double> combined(batch), lse(batch);
  crossEntropyCombine(gathered.data(), labels.data(), combined.data(), lse.data(), batch, ranks);
  for (int64_t b = 0; b < batch; ++b)
    EXPECT_NEAR(combined[b], loss[b], 1e-12);
  for (int64_t r = 0; r < ranks; ++r) {
    std::vector<double> d(batch * block);
    crossEntropyGrad(blocks[r].data(), labels.data(), grad.data(), d.data(), batch, block,
                     lse.data(), r * block, classes);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < block; ++c)
        EXPECT_NEAR(d[b * block + c], dlogits[b * classes + r * block + c], 1e-12);
  }
  std::vector<int32_t> bad = {0, 6, 1};
  EXPECT_THROW(
      crossEntropyPartial(blocks[0].data(), bad.data(), gathered.data(), batch, block, 0, classes),
      DataError);
}

// The argmax of split classes: each block's maximum and its class,
// combined, pick the whole row's first maximum (ties across blocks too).
TEST(Kernels, CorrectOverSplitClassesMatchesTheWholeRow) {
  const int64_t batch = 4, block = 3, ranks = 2;
  std::vector<float> logits = {0, 5, 1, 3, 2, 1, // max in block 0
                               0, 1, 2, 3, 9, 1, // max in block 1
                               7, 1, 7, 7, 1, 0, // ties: the first
                               0, 0, 0, 0, 0, 0};
  std::vector<int32_t> labels = {1, 4, 0, 3};
  std::vector<float> whole(batch), gathered(2 * ranks * batch), combined(batch);
  correct(logits.data(), labels.data(), whole.data(), batch, block * ranks);
  for (int64_t r = 0; r < ranks; ++r) {
    std::vector<float> part(batch * block);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < block; ++c)
        part[b * block + c] = logits[b * block * ranks + r * block + c];
    argmaxPartial(part.data(), gathered.data() + 2 * r * batch, batch, block, r * block);
  }
  correctCombine(gathered.data(), labels.data(), combined.data(), batch, ranks);
  EXPECT_EQ(combined, whole);
  EXPECT_EQ(whole, (std::vector<float>{1, 1, 1, 0}));
}

TEST(Kernels, LabelOutOfRangeIsAnErrorNotARead) {
  std::vector<float> logits(6), out(2);
  std::vector<int32_t> labels = {1, 3};
  EXPECT_THROW(crossEntropy(logits.data(), labels.data(), out.data(), 2, 3), DataError);
}

TEST(Kernels, CorrectCountsArgmaxHits) {
  std::vector<float> logits = {0, 5, 1, 3, 2, 1}, out(2);
  std::vector<int32_t> labels = {1, 2};
  correct(logits.data(), labels.data(), out.data(), 2, 3);
  EXPECT_EQ(out, (std::vector<float>{1, 0}));
}

TEST(Kernels, AdamwFirstStepsMatchTorchFormula) {
  double p = 0.5, g = 0.2, m = 0, v = 0;
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  for (int t = 1; t <= 3; ++t) {
    double newP, newM, newV, step = t, scale = 1;
    adamwUpdate(&p, &g, &m, &v, &lr, &step, &scale, b1, b2, eps, wd, &newP, &newM, &newV, 1);
    double em = b1 * m + (1 - b1) * g, ev = b2 * v + (1 - b2) * g * g;
    double expected = p * (1 - lr * wd) - lr * (em / (1 - std::pow(b1, t))) /
                                              (std::sqrt(ev / (1 - std::pow(b2, t))) + eps);
    EXPECT_NEAR(newP, expected, 1e-14);
    p = newP, m = newM, v = newV;
  }
}

TEST(Kernels, SgdMomentumMatchesTorchFormula) {
  double p = 1.0, g = 0.5, buf = 0.25, lr = 0.1, scale = 1, newP, newBuf;
  sgdUpdate(&p, &g, &buf, &lr, &scale, 0.9, 0.01, &newP, &newBuf, 1);
  // torch: d = g + wd p; buf = momentum buf + d; p -= lr buf.
  double d = g + 0.01 * p, expectedBuf = 0.9 * buf + d;
  EXPECT_NEAR(newBuf, expectedBuf, 1e-15);
  EXPECT_NEAR(newP, p - 0.1 * expectedBuf, 1e-15);
}

} // namespace

// Clipping scales the gradient the update sees; a NaN scale (a non-finite
// loss or norm) skips the step, out of place and in place alike.
TEST(Kernels, GradScaleClipsOrSkipsTheUpdate) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = INFINITY;
  EXPECT_DOUBLE_EQ(gradScale(1.0, 4.0, 0.0), 1.0) << "no clipping";
  EXPECT_DOUBLE_EQ(gradScale(1.0, 0.5, 1.0), 1.0) << "below the limit";
  EXPECT_NEAR(gradScale(1.0, 4.0, 1.0), 0.25, 1e-7);
  EXPECT_TRUE(std::isnan(gradScale(nan, 1.0, 1.0)));
  EXPECT_TRUE(std::isnan(gradScale(1.0, inf, 0.0)));

  double p = 0.5, g = 0.4, m = 0.1, v = 0.2, lr = 0.01, step = 3, half = 0.5, halfG = 0.2, one = 1;
  double clippedP, clippedM, clippedV, plainP, plainM, plainV;
  adamwUpdate(&p, &g, &m, &v, &lr, &step, &half, 0.9, 0.99, 1e-8, 0.1, &clippedP, &clippedM,
              &clippedV, 1);
  adamwUpdate(&p, &halfG, &m, &v, &lr, &step, &one, 0.9, 0.99, 1e-8, 0.1, &plainP, &plainM, &plainV,
              1);
  EXPECT_DOUBLE_EQ(clippedP, plainP);
  EXPECT_DOUBLE_EQ(clippedV, plainV);

  double skipP = -1, skipM = -1, skipV = -1, skipBuf = -1;
  adamwUpdate(&p, &g, &m, &v, &lr, &step, &nan, 0.9, 0.99, 1e-8, 0.1, &skipP, &skipM, &skipV, 1);
  EXPECT_EQ(skipP, p);
  EXPECT_EQ(skipM, m);
  EXPECT_EQ(skipV, v);
  sgdUpdate(&p, &g, &m, &lr, &nan, 0.9, 0.1, &skipP, &skipBuf, 1);
  EXPECT_EQ(skipBuf, m);
  double inPlace = p, inPlaceBuf = m;
  sgdUpdate(&inPlace, &g, &inPlaceBuf, &lr, &nan, 0.9, 0.1, &inPlace, &inPlaceBuf, 1);
  EXPECT_EQ(inPlace, p);
  EXPECT_EQ(inPlaceBuf, m);
}
