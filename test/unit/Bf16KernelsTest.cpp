//===- Bf16KernelsTest.cpp - bf16 storage against the f32 kernels ---------===//
//
// The bf16 kernels compute in f32 on bf16 inputs; on the same (rounded)
// inputs they must give what the f32 kernels give, up to the rounding of
// their bf16 outputs (2^-9 relative).

#include "dtlrt/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

using namespace dtlrt;

namespace {

/// Values already representable in bf16, as f32 and as bf16.
struct Rounded {
  std::vector<float> f32;
  std::vector<bf16> b16;
};

Rounded wave(int64_t n, float scale = 1.0f, float phase = 0.0f) {
  Rounded r;
  for (int64_t i = 0; i < n; ++i) {
    r.b16.push_back(bf16(std::sin(1.3f * i + phase) * scale));
    r.f32.push_back(float(r.b16.back()));
  }
  return r;
}

void expectClose(const std::vector<bf16> &got, const std::vector<float> &expected, double rtol,
                 double atol) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(float(got[i]), expected[i], atol + rtol * std::fabs(expected[i])) << i;
}

TEST(Bf16, RoundsToNearestEvenAndKeepsSpecials) {
  const float ulp = std::ldexp(1.0f, -7);                     // at 1.0: 7 mantissa bits
  EXPECT_EQ(float(bf16(1.0f + ulp / 2)), 1.0f);               // a tie, to the even 1.0
  EXPECT_EQ(float(bf16(1.0f + 3 * ulp / 2)), 1.0f + 2 * ulp); // a tie, to even
  EXPECT_EQ(float(bf16(1.0f + ulp * 0.51f)), 1.0f + ulp);
  EXPECT_EQ(float(bf16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(float(bf16(std::numeric_limits<float>::infinity())),
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(float(bf16(3.4e38f)), std::numeric_limits<float>::infinity()); // rounds past max
}

TEST(Bf16, MatmulMatchesF32OnBothOutputTypes) {
  const int64_t m = 37, n = 29, k = 53;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool withBias : {false, true}) {
        Rounded a = wave(m * k, 0.5f), b = wave(k * n, 0.7f, 0.3f), bias = wave(n, 0.2f, 1.1f);
        std::vector<float> expected(m * n), c32(m * n);
        std::vector<bf16> c16(m * n);
        const float *fBias = withBias ? bias.f32.data() : nullptr;
        const bf16 *bBias = withBias ? bias.b16.data() : nullptr;
        matmul(ta, tb, m, n, k, a.f32.data(), b.f32.data(), fBias, expected.data());
        matmul(ta, tb, m, n, k, a.b16.data(), b.b16.data(), bBias, c32.data());
        matmul(ta, tb, m, n, k, a.b16.data(), b.b16.data(), bBias, c16.data());
        for (int64_t i = 0; i < m * n; ++i)
          EXPECT_NEAR(c32[i], expected[i], 1e-4) << ta << tb << withBias << " " << i;
        expectClose(c16, expected, 1.0 / 256, 1e-4);
      }
}

TEST(Bf16, RowKernelsKeepF32Statistics) {
  const int64_t rows = 5, n = 48;
  Rounded x = wave(rows * n, 2.0f), w = wave(n, 1.0f, 1.0f), b = wave(n, 0.5f, 2.0f),
          g = wave(rows * n, 1.0f, 0.4f);
  std::vector<float> y32(rows * n), mean32(rows), rstd32(rows), dx32(rows * n), dw32(n), db32(n);
  std::vector<bf16> y16(rows * n), dx16(rows * n);
  std::vector<float> mean16(rows), rstd16(rows), dw16(n), db16(n);
  layerNorm(x.f32.data(), w.f32.data(), b.f32.data(), 1e-5, y32.data(), mean32.data(),
            rstd32.data(), rows, n);
  layerNorm(x.b16.data(), w.b16.data(), b.b16.data(), 1e-5, y16.data(), mean16.data(),
            rstd16.data(), rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_NEAR(mean16[r], mean32[r], 1e-6);
    EXPECT_NEAR(rstd16[r], rstd32[r], 1e-5 * rstd32[r]);
  }
  expectClose(y16, y32, 1.0 / 256, 1e-6);
  layerNormGradInput(x.f32.data(), w.f32.data(), mean32.data(), rstd32.data(), g.f32.data(),
                     dx32.data(), rows, n);
  layerNormGradInput(x.b16.data(), w.b16.data(), mean16.data(), rstd16.data(), g.b16.data(),
                     dx16.data(), rows, n);
  expectClose(dx16, dx32, 1.0 / 256, 1e-5);
  // Parameter gradients come out in f32 from bf16 activations.
  layerNormGradParams(x.f32.data(), mean32.data(), rstd32.data(), g.f32.data(), dw32.data(),
                      db32.data(), rows, n);
  layerNormGradParams(x.b16.data(), mean16.data(), rstd16.data(), g.b16.data(), dw16.data(),
                      db16.data(), rows, n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(dw16[i], dw32[i], 1e-5);
    EXPECT_NEAR(db16[i], db32[i], 1e-5);
  }
}

TEST(Bf16, CausalAttentionMatchesF32AcrossTiles) {
  const int64_t batch = 2, seq = 70, heads = 2, channels = 8;
  const int64_t n = batch * seq * channels, stats = batch * heads * seq;
  Rounded q = wave(n), k = wave(n, 1.0f, 0.7f), v = wave(n, 1.0f, 1.9f), g = wave(n, 1.0f, 2.3f);
  std::vector<float> out32(n), lse32(stats), dq32(n), dk32(n), dv32(n), lse16(stats);
  std::vector<bf16> out16(n), dq16(n), dk16(n), dv16(n);
  causalAttention(q.f32.data(), k.f32.data(), v.f32.data(), out32.data(), lse32.data(), batch, seq,
                  channels, heads);
  causalAttention(q.b16.data(), k.b16.data(), v.b16.data(), out16.data(), lse16.data(), batch, seq,
                  channels, heads);
  for (int64_t i = 0; i < stats; ++i)
    EXPECT_NEAR(lse16[i], lse32[i], 1e-5) << i;
  expectClose(out16, out32, 1.0 / 256, 1e-5);
  causalAttentionGrad(q.f32.data(), k.f32.data(), v.f32.data(), lse32.data(), g.f32.data(),
                      dq32.data(), dk32.data(), dv32.data(), batch, seq, channels, heads);
  causalAttentionGrad(q.b16.data(), k.b16.data(), v.b16.data(), lse16.data(), g.b16.data(),
                      dq16.data(), dk16.data(), dv16.data(), batch, seq, channels, heads);
  expectClose(dq16, dq32, 1.0 / 256, 1e-5);
  expectClose(dk16, dk32, 1.0 / 256, 1e-5);
  expectClose(dv16, dv32, 1.0 / 256, 1e-5);
}

TEST(Bf16, LossesAndEmbeddingGradientsAreF32) {
  const int64_t batch = 6, classes = 11, channels = 4, vocab = 5;
  Rounded logits = wave(batch * classes, 3.0f);
  std::vector<int32_t> labels = {0, 3, -1, 10, 2, 7}, ids = {1, 4, 1, 0, 3, 1};
  std::vector<float> loss32(batch), loss16(batch), seed(batch, 0.5f), dl32(batch * classes);
  std::vector<bf16> dl16(batch * classes);
  crossEntropy(logits.f32.data(), labels.data(), loss32.data(), batch, classes);
  crossEntropy(logits.b16.data(), labels.data(), loss16.data(), batch, classes);
  crossEntropyGrad(logits.f32.data(), labels.data(), seed.data(), dl32.data(), batch, classes);
  crossEntropyGrad(logits.b16.data(), labels.data(), seed.data(), dl16.data(), batch, classes);
  for (int64_t b = 0; b < batch; ++b)
    EXPECT_NEAR(loss16[b], loss32[b], 1e-5);
  expectClose(dl16, dl32, 1.0 / 256, 1e-6);
  Rounded grad = wave(batch * channels, 1.0f, 0.9f);
  std::vector<float> table32(vocab * channels), table16(vocab * channels);
  embeddingGrad(ids.data(), grad.f32.data(), table32.data(), batch, vocab, channels);
  embeddingGrad(ids.data(), grad.b16.data(), table16.data(), batch, vocab, channels);
  for (int64_t i = 0; i < vocab * channels; ++i)
    EXPECT_EQ(table16[i], table32[i]) << i;
}

} // namespace
