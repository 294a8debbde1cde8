//===- TransformerKernelsTest.cpp - GPT kernels against naive references --===//

#include "dtlrt/Data.h"
#include "dtlrt/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace dtlrt;

namespace {

std::vector<double> wave(int64_t n, double scale = 1.0, double phase = 0.0) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = std::sin(1.3 * i + phase) * scale;
  return v;
}

TEST(TransformerKernels, FastExpAndTanhMatchLibm) {
  double worstExp = 0, worstTanh = 0;
  for (float x = -80.0f; x < 80.0f; x += 0.0137f)
    worstExp = std::max(worstExp, std::fabs(fastExp(x) / std::exp(double(x)) - 1));
  for (float u = -10.0f; u < 10.0f; u += 0.001f)
    worstTanh = std::max(worstTanh, std::fabs(double(fastTanh(u)) - std::tanh(double(u))));
  EXPECT_LT(worstExp, 5e-7);
  EXPECT_LT(worstTanh, 5e-7);
}

TEST(TransformerKernels, GeluGradIsTheDerivative) {
  for (double x = -4; x < 4; x += 0.37) {
    double h = 1e-6, numeric = (gelu(x + h) - gelu(x - h)) / (2 * h);
    EXPECT_NEAR(geluGrad(x, 1.0), numeric, 1e-8) << x;
  }
  EXPECT_NEAR(gelu(1.0), 0.8411919906082768, 1e-12); // PyTorch's gelu(approximate='tanh')
}

TEST(TransformerKernels, SoftmaxRowsSumToOneAndGradIsJacobianProduct) {
  const int64_t rows = 3, n = 5;
  std::vector<double> x = wave(rows * n, 3.0), y(rows * n), g = wave(rows * n, 1.0, 0.5),
                      dx(rows * n);
  softmax(x.data(), y.data(), rows, n);
  softmaxGrad(y.data(), g.data(), dx.data(), rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i)
      sum += y[r * n + i];
    EXPECT_NEAR(sum, 1.0, 1e-12);
    for (int64_t i = 0; i < n; ++i) {
      double jg = 0; // sum_j dy_j/dx_i g_j = y_i (g_i - sum_j y_j g_j)
      for (int64_t j = 0; j < n; ++j)
        jg += y[r * n + j] * ((i == j) - y[r * n + i]) * g[r * n + j];
      EXPECT_NEAR(dx[r * n + i], jg, 1e-12);
    }
  }
}

TEST(TransformerKernels, LayerNormNormalisesRows) {
  const int64_t rows = 4, n = 6;
  std::vector<double> x = wave(rows * n, 2.0), w = wave(n, 1.0, 1.0), b = wave(n, 0.5, 2.0);
  std::vector<double> y(rows * n), mean(rows), rstd(rows);
  layerNorm(x.data(), w.data(), b.data(), 1e-5, y.data(), mean.data(), rstd.data(), rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < n; ++i)
      mu += x[r * n + i] / n;
    for (int64_t i = 0; i < n; ++i)
      var += (x[r * n + i] - mu) * (x[r * n + i] - mu) / n;
    EXPECT_NEAR(mean[r], mu, 1e-12);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(y[r * n + i], (x[r * n + i] - mu) / std::sqrt(var + 1e-5) * w[i] + b[i], 1e-12);
  }
}

TEST(TransformerKernels, EmbeddingGathersAndScattersRows) {
  const int64_t vocab = 4, channels = 3;
  std::vector<double> table = wave(vocab * channels), out(2 * 2 * channels), grad(vocab * channels);
  std::vector<int32_t> ids = {2, 0, 2, 3};
  embedding(table.data(), ids.data(), out.data(), 4, vocab, channels);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < channels; ++c)
      EXPECT_EQ(out[i * channels + c], table[ids[i] * channels + c]);
  std::vector<double> ones(4 * channels, 1.0);
  embeddingGrad(ids.data(), ones.data(), grad.data(), 4, vocab, channels);
  EXPECT_EQ(grad[2 * channels], 2.0); // id 2 appears twice
  EXPECT_EQ(grad[1 * channels], 0.0); // id 1 never
  std::vector<int32_t> bad = {0, 4};
  EXPECT_THROW(embedding(table.data(), bad.data(), out.data(), 2, vocab, channels), DataError);
}

// A table split by rows (VocabParallelEmbedding): the blocks' lookups sum to
// the whole table's, and each block's gradient is its rows of the whole one.
TEST(TransformerKernels, EmbeddingBlocksOfRowsSumToTheWholeTable) {
  const int64_t vocab = 6, channels = 2, count = 5, block = 3;
  std::vector<double> table = wave(vocab * channels), whole(count * channels),
                      wholeGrad(vocab * channels), g = wave(count * channels, 1.0, 0.4);
  std::vector<int32_t> ids = {5, 0, 2, 3, 5};
  embedding(table.data(), ids.data(), whole.data(), count, vocab, channels);
  embeddingGrad(ids.data(), g.data(), wholeGrad.data(), count, vocab, channels);
  std::vector<double> sum(count * channels, 0.0);
  for (int64_t first = 0; first < vocab; first += block) {
    std::vector<double> out(count * channels), grad(block * channels);
    embedding(table.data() + first * channels, ids.data(), out.data(), count, block, channels,
              first, vocab);
    for (int64_t i = 0; i < count * channels; ++i)
      sum[i] += out[i];
    embeddingGrad(ids.data(), g.data(), grad.data(), count, block, channels, first, vocab);
    for (int64_t i = 0; i < block * channels; ++i)
      EXPECT_EQ(grad[i], wholeGrad[first * channels + i]);
  }
  for (int64_t i = 0; i < count * channels; ++i)
    EXPECT_EQ(sum[i], whole[i]);
  std::vector<int32_t> bad = {0, 6};
  std::vector<double> out(2 * channels);
  EXPECT_THROW(embedding(table.data(), bad.data(), out.data(), 2, block, channels, 0, vocab),
               DataError);
}

// Attention and its gradient from the whole [T, T] probabilities, the way
// the kernels avoid; 70 positions make two query tiles (64 and 6 rows).
TEST(TransformerKernels, CausalAttentionMatchesNaiveHeads) {
  const int64_t batch = 2, seq = 70, heads = 2, channels = 6, d = channels / heads;
  int64_t n = batch * seq * channels;
  std::vector<double> q = wave(n, 1.0), k = wave(n, 1.0, 0.7), v = wave(n, 1.0, 1.9),
                      g = wave(n, 1.0, 2.3), out(n), lse(batch * heads * seq), dq(n), dk(n), dv(n);
  causalAttention(q.data(), k.data(), v.data(), out.data(), lse.data(), batch, seq, channels,
                  heads);
  causalAttentionGrad(q.data(), k.data(), v.data(), lse.data(), g.data(), dq.data(), dk.data(),
                      dv.data(), batch, seq, channels, heads);
  auto at = [&](int64_t b, int64_t t, int64_t h, int64_t i) {
    return (b * seq + t) * channels + h * d + i;
  };
  std::vector<double> expectDq(n), expectDk(n), expectDv(n);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < seq; ++t) {
        std::vector<double> p(t + 1), dp(t + 1);
        double max = -1e300, sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < d; ++i)
            p[j] += q[at(b, t, h, i)] * k[at(b, j, h, i)];
          p[j] /= std::sqrt(double(d));
          max = std::max(max, p[j]);
        }
        for (double &e : p)
          sum += std::exp(e - max);
        EXPECT_NEAR(lse[(b * heads + h) * seq + t], max + std::log(sum), 1e-12);
        for (double &e : p)
          e = std::exp(e - max) / sum;
        double weighted = 0;
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < d; ++i) {
            expectDv[at(b, j, h, i)] += p[j] * g[at(b, t, h, i)];
            dp[j] += g[at(b, t, h, i)] * v[at(b, j, h, i)];
          }
          weighted += p[j] * dp[j];
        }
        for (int64_t i = 0; i < d; ++i) {
          double expected = 0;
          for (int64_t j = 0; j <= t; ++j)
            expected += p[j] * v[at(b, j, h, i)];
          EXPECT_NEAR(out[at(b, t, h, i)], expected, 1e-12);
        }
        for (int64_t j = 0; j <= t; ++j) {
          double ds = p[j] * (dp[j] - weighted) / std::sqrt(double(d));
          for (int64_t i = 0; i < d; ++i) {
            expectDq[at(b, t, h, i)] += ds * k[at(b, j, h, i)];
            expectDk[at(b, j, h, i)] += ds * q[at(b, t, h, i)];
          }
        }
      }
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(dq[i], expectDq[i], 1e-11) << i;
    EXPECT_NEAR(dk[i], expectDk[i], 1e-11) << i;
    EXPECT_NEAR(dv[i], expectDv[i], 1e-11) << i;
  }
}

TEST(TransformerKernels, DropoutMaskDependsOnTheGlobalIndexOnly) {
  // The same 4x6 tensor whole on one rank, and as the right half on another.
  const int64_t global[] = {4, 6}, whole[] = {4, 6}, half[] = {4, 3};
  const int64_t zero[] = {0, 0}, right[] = {0, 3};
  std::vector<double> x(24, 1.0), all(24), part(12);
  const double step3 = 3, step0 = 0;
  dropout(x.data(), all.data(), 2, whole, global, zero, 0.5, 7, 0, -1, &step3);
  dropout(x.data(), part.data(), 2, half, global, right, 0.5, 7, 0, -1, &step3);
  int kept = 0;
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_EQ(part[r * 3 + c], all[r * 6 + 3 + c]);
      kept += all[r * 6 + c] != 0;
    }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, 12);
  for (double v : all)
    EXPECT_TRUE(v == 0.0 || v == 2.0); // kept values scaled by 1 / (1 - rate)
  // Each layer of a repeat draws its own mask.
  std::vector<double> layer0(24), layer1(24);
  dropout(x.data(), layer0.data(), 2, whole, global, zero, 0.5, 7, 0, 0, &step3);
  dropout(x.data(), layer1.data(), 2, whole, global, zero, 0.5, 7, 0, 1, &step3);
  EXPECT_NE(layer0, layer1);
  dropout(x.data(), all.data(), 2, whole, global, zero, 0.5, 7, 0, -1, &step0); // identity
  EXPECT_EQ(all, x);
}

} // namespace
