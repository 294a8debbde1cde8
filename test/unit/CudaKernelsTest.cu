//===- CudaKernelsTest.cu - each CUDA kernel against its CPU twin ----------===//
//
// libdtlrt_cuda's kernels on random inputs (odd sizes, rows longer than a
// block) against libdtlrt's CPU kernels, which the CPU target's tests pin
// down. Without a CUDA device every test is skipped, saying why.
//
//===----------------------------------------------------------------------===//

#include "dtlrt/Cuda.h"
#include "dtlrt/Data.h"
#include "dtlrt/Kernels.h"
#include "dtlrt/RankDiscovery.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <random>
#include <vector>

namespace {

using Floats = std::vector<float>;
using Bf16s = std::vector<dtlrt::bf16>;

/// Why there is no GPU ("" when there is one); the device is set up once.
const std::string &noDevice() {
  static dtlrt::Context ctx({1}, 0);
  static const std::string error =
      dtlrt::cuda::device(dtlrt::cuda::GemmMath::F32)->setUp(dtlrt::LaunchInfo{}, ctx, 0);
  return error;
}

class CudaKernels : public ::testing::Test {
protected:
  void SetUp() override {
    if (!noDevice().empty())
      GTEST_SKIP() << "no CUDA device, so the CUDA kernels were not run: " << noDevice();
  }

  /// A device copy of `host`, freed with the test.
  template <typename T> T *up(const std::vector<T> &host) {
    T *p = static_cast<T *>(device()->allocate(host.size() * sizeof(T)));
    device()->upload(p, host.data(), host.size() * sizeof(T));
    return p;
  }
  template <typename T> std::vector<T> down(const T *p, size_t n) {
    std::vector<T> host(n);
    device()->download(host.data(), p, n * sizeof(T));
    return host;
  }
  float *zeros(size_t n) { return up(Floats(n, 0.f)); }
  static dtlrt::Device *device() { return dtlrt::cuda::device(dtlrt::cuda::GemmMath::F32); }

  Floats random(size_t n, float scale = 1.f) {
    std::normal_distribution<float> normal(0.f, scale);
    Floats v(n);
    for (float &x : v)
      x = normal(rng_);
    return v;
  }

  /// Every element within atol + rtol |expected|.
  static void expectNear(const Floats &expected, const Floats &actual, float rtol = 1e-4f,
                         float atol = 1e-5f) {
    ASSERT_EQ(expected.size(), actual.size());
    for (size_t i = 0; i < expected.size(); ++i)
      ASSERT_NEAR(expected[i], actual[i], atol + rtol * std::fabs(expected[i])) << "at " << i;
  }

  /// `n` random values rounded to bf16 (the CPU and GPU kernels then read
  /// the same inputs).
  Bf16s randomBf16(size_t n, float scale = 1.f) {
    Floats v = random(n, scale);
    return Bf16s(v.begin(), v.end());
  }
  template <typename T> static Floats widen(const std::vector<T> &v) {
    return Floats(v.begin(), v.end());
  }
  dtlrt::bf16 *zerosBf16(size_t n) { return up(Bf16s(n, dtlrt::bf16(0.f))); }

  /// Layernorm forward, its input gradient and its parameter gradients (in
  /// f32) of values stored as T, on the CPU and on the GPU, widened to f32.
  struct LayerNormResults {
    Floats out, mean, rstd, dx, dw, db;
  };
  template <typename T>
  std::pair<LayerNormResults, LayerNormResults>
  layerNormOnBoth(const std::vector<T> &x, const std::vector<T> &w, const std::vector<T> &b,
                  const std::vector<T> &g, int64_t rows, int64_t n) {
    std::vector<T> out(rows * n), dx(rows * n);
    Floats mean(rows), rstd(rows), dw(n), db(n);
    dtlrt::layerNorm(x.data(), w.data(), b.data(), 1e-5, out.data(), mean.data(), rstd.data(), rows,
                     n);
    dtlrt::layerNormGradInput(x.data(), w.data(), mean.data(), rstd.data(), g.data(), dx.data(),
                              rows, n);
    dtlrt::layerNormGradParams(x.data(), mean.data(), rstd.data(), g.data(), dw.data(), db.data(),
                               rows, n);
    T *dOut = up(std::vector<T>(rows * n, T(0.f))), *dDx = up(std::vector<T>(rows * n, T(0.f)));
    float *dMean = zeros(rows), *dRstd = zeros(rows), *dDw = zeros(n), *dDb = zeros(n);
    T *dX = up(x), *dW = up(w), *dG = up(g);
    dtlrt::cuda::layerNorm(dX, dW, up(b), 1e-5, dOut, dMean, dRstd, rows, n);
    dtlrt::cuda::layerNormGradInput(dX, dW, dMean, dRstd, dG, dDx, rows, n);
    dtlrt::cuda::layerNormGradParams(dX, dMean, dRstd, dG, dDw, dDb, rows, n);
    return {{widen(out), mean, rstd, widen(dx), dw, db},
            {widen(down(dOut, rows * n)), down(dMean, rows), down(dRstd, rows),
             widen(down(dDx, rows * n)), down(dDw, n), down(dDb, n)}};
  }

  /// Sums of a [6, 70, 9] tensor over all its dimensions (a loss), the
  /// leading ones (a bias gradient) and the middle one (the general
  /// kernel), into f32, against the CPU's.
  template <typename T> void expectSumsLikeCpu(const std::vector<T> &in) {
    const int64_t shape[] = {6, 70, 9};
    for (std::vector<bool> reduced :
         {std::vector<bool>{true, true, true}, {true, true, false}, {false, true, false}}) {
      bool mask[3] = {reduced[0], reduced[1], reduced[2]};
      int64_t kept = (reduced[0] ? 1 : 6) * (reduced[1] ? 1 : 70) * (reduced[2] ? 1 : 9);
      Floats expected(kept);
      dtlrt::reduceSum(in.data(), expected.data(), shape, mask, 3);
      float *out = zeros(kept);
      dtlrt::cuda::reduceSum(up(in), out, shape, mask, 3);
      expectNear(expected, down(out, kept), 1e-4f, 1e-4f);
    }
  }

  std::mt19937 rng_{1234};
};

TEST_F(CudaKernels, MatmulInEveryLayoutWithAndWithoutBias) {
  const int64_t m = 37, n = 45, k = 29;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool withBias : {false, true}) {
        Floats a = random(m * k), b = random(k * n), bias = random(n), expected(m * n);
        dtlrt::matmul(ta, tb, m, n, k, a.data(), b.data(), withBias ? bias.data() : nullptr,
                      expected.data());
        float *c = zeros(m * n);
        dtlrt::cuda::matmul(ta, tb, m, n, k, up(a), up(b), withBias ? up(bias) : nullptr, c);
        SCOPED_TRACE(testing::Message() << "ta " << ta << " tb " << tb << " bias " << withBias);
        expectNear(expected, down(c, m * n));
      }
}

TEST_F(CudaKernels, BroadcastAndTranspose) {
  // [3, 5] -> [3, 4, 5], then a transpose [2, 3, 4] -> [4, 2, 3].
  Floats in = random(15), expected(60);
  const int64_t shape[] = {3, 4, 5}, strides[] = {5, 0, 1};
  dtlrt::broadcast(in.data(), expected.data(), shape, strides, 3);
  float *out = zeros(60);
  dtlrt::cuda::broadcast(up(in), out, shape, strides, 3);
  expectNear(expected, down(out, 60), 0, 0);

  Floats t = random(24), transposed(24);
  const int64_t tShape[] = {4, 2, 3}, tStrides[] = {1, 12, 4};
  dtlrt::broadcast(t.data(), transposed.data(), tShape, tStrides, 3);
  float *tOut = zeros(24);
  dtlrt::cuda::broadcast(up(t), tOut, tShape, tStrides, 3);
  expectNear(transposed, down(tOut, 24), 0, 0);
}

TEST_F(CudaKernels, PlaceLikeCpu) {
  // A [3, 4, 5] piece placed at stride into a [3, 8, 5] whole (a concat).
  Floats in = random(60), expected(120, 0.0f);
  const int64_t shape[] = {3, 4, 5}, strides[] = {40, 5, 1};
  dtlrt::place(in.data(), expected.data() + 10, shape, strides, 3);
  float *out = zeros(120);
  dtlrt::cuda::place(up(in), out + 10, shape, strides, 3);
  expectNear(expected, down(out, 120), 0, 0);
}

TEST_F(CudaKernels, ReduceSumAllLeadingAndGeneral) { expectSumsLikeCpu(random(6 * 70 * 9)); }

TEST_F(CudaKernels, CrossEntropyItsGradientAndAccuracy) {
  const int64_t rows = 13, classes = 300;
  Floats logits = random(rows * classes, 3.f), grad = random(rows);
  std::vector<int32_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r)
    labels[r] = r % 5 == 4 ? -1 : int32_t(r * 23 % classes); // -1: ignored
  Floats loss(rows), dlogits(rows * classes);
  dtlrt::crossEntropy(logits.data(), labels.data(), loss.data(), rows, classes);
  dtlrt::crossEntropyGrad(logits.data(), labels.data(), grad.data(), dlogits.data(), rows, classes);
  float *dLoss = zeros(rows), *dGrad = zeros(rows * classes), *dLogits = up(logits);
  int32_t *dLabels = up(labels);
  dtlrt::cuda::crossEntropy(dLogits, dLabels, dLoss, rows, classes);
  dtlrt::cuda::crossEntropyGrad(dLogits, dLabels, up(grad), dGrad, rows, classes);
  expectNear(loss, down(dLoss, rows), 1e-4f, 1e-4f);
  expectNear(dlogits, down(dGrad, rows * classes), 1e-3f, 1e-6f);

  // Every third row predicts its label; ties go to the first index.
  for (int64_t r = 0; r < rows; r += 3)
    if (labels[r] >= 0)
      logits[r * classes + labels[r]] = 100.f;
  logits[1 * classes + 0] = logits[1 * classes + 299] = 200.f;
  Floats correct(rows);
  dtlrt::correct(logits.data(), labels.data(), correct.data(), rows, classes);
  float *dCorrect = zeros(rows);
  dtlrt::cuda::correct(up(logits), dLabels, dCorrect, rows, classes);
  expectNear(correct, down(dCorrect, rows), 0, 0);
}

// The vocab-parallel pieces on a block of the classes against the CPU's.
TEST_F(CudaKernels, CrossEntropyOverABlockOfTheClasses) {
  const int64_t rows = 13, block = 100, first = 200, vocab = 400, ranks = 4;
  Floats logits = random(rows * block, 3.f), grad = random(rows), lse = random(rows, 1.f);
  for (float &v : lse)
    v += 7.f;
  std::vector<int32_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r)
    labels[r] = r % 5 == 4 ? -1 : int32_t(r * 31 % vocab); // some in the block, some not
  Floats parts(2 * rows), dlogits(rows * block);
  dtlrt::crossEntropyPartial(logits.data(), labels.data(), parts.data(), rows, block, first, vocab);
  dtlrt::crossEntropyGrad(logits.data(), labels.data(), grad.data(), dlogits.data(), rows, block,
                          lse.data(), first, vocab);
  float *dParts = zeros(2 * rows), *dGrad = zeros(rows * block);
  int32_t *dLabels = up(labels);
  dtlrt::cuda::crossEntropyPartial(up(logits), dLabels, dParts, rows, block, first, vocab);
  dtlrt::cuda::crossEntropyGrad(up(logits), dLabels, up(grad), dGrad, rows, block, up(lse), first,
                                vocab);
  expectNear(parts, down(dParts, 2 * rows), 1e-5f, 1e-5f);
  expectNear(dlogits, down(dGrad, rows * block), 1e-3f, 1e-6f);

  Floats gathered = random(2 * ranks * rows, 2.f), loss(rows), combined(rows);
  dtlrt::crossEntropyCombine(gathered.data(), labels.data(), loss.data(), combined.data(), rows,
                             ranks);
  float *dLoss = zeros(rows), *dLse = zeros(rows);
  dtlrt::cuda::crossEntropyCombine(up(gathered), dLabels, dLoss, dLse, rows, ranks);
  expectNear(loss, down(dLoss, rows), 1e-5f, 1e-5f);
  expectNear(combined, down(dLse, rows), 1e-5f, 1e-5f);

  Floats maxima(2 * rows), hits(rows);
  dtlrt::argmaxPartial(logits.data(), maxima.data(), rows, block, first);
  dtlrt::correctCombine(gathered.data(), labels.data(), hits.data(), rows, ranks);
  float *dMaxima = zeros(2 * rows), *dHits = zeros(rows);
  dtlrt::cuda::argmaxPartial(up(logits), dMaxima, rows, block, first);
  dtlrt::cuda::correctCombine(up(gathered), dLabels, dHits, rows, ranks);
  expectNear(maxima, down(dMaxima, 2 * rows), 0, 0);
  expectNear(hits, down(dHits, rows), 0, 0);
}

TEST_F(CudaKernels, ALabelBeyondTheClassesIsAnErrorAfterTheStep) {
  Floats logits = random(2 * 4);
  std::vector<int32_t> labels{1, 7};
  float *loss = zeros(2);
  dtlrt::cuda::crossEntropy(up(logits), up(labels), loss, 2, 4);
  try {
    down(loss, 2);
    FAIL() << "no error for label 7 of 4 classes";
  } catch (const dtlrt::DataError &e) {
    EXPECT_NE(std::string(e.what()).find("a label is 7"), std::string::npos) << e.what();
  }
}

TEST_F(CudaKernels, SoftmaxAndItsGradient) {
  const int64_t rows = 7, n = 1000;
  Floats x = random(rows * n, 2.f), g = random(rows * n), y(rows * n), dx(rows * n);
  dtlrt::softmax(x.data(), y.data(), rows, n);
  dtlrt::softmaxGrad(y.data(), g.data(), dx.data(), rows, n);
  float *dy = zeros(rows * n), *ddx = zeros(rows * n);
  dtlrt::cuda::softmax(up(x), dy, rows, n);
  dtlrt::cuda::softmaxGrad(up(y), up(g), ddx, rows, n);
  expectNear(y, down(dy, rows * n), 1e-4f, 1e-7f);
  expectNear(dx, down(ddx, rows * n), 1e-3f, 1e-7f);
}

TEST_F(CudaKernels, LayerNormForwardAndBackward) {
  const int64_t rows = 300, n = 96;
  Floats x = random(rows * n, 2.f), w = random(n), b = random(n), g = random(rows * n);
  auto [cpu, gpu] = layerNormOnBoth(x, w, b, g, rows, n);
  expectNear(cpu.out, gpu.out);
  expectNear(cpu.mean, gpu.mean);
  expectNear(cpu.rstd, gpu.rstd);
  expectNear(cpu.dx, gpu.dx, 1e-3f, 1e-5f);
  expectNear(cpu.dw, gpu.dw, 1e-3f, 1e-4f);
  expectNear(cpu.db, gpu.db, 1e-3f, 1e-4f);
}

TEST_F(CudaKernels, EmbeddingAndItsScatteredGradient) {
  const int64_t count = 50, vocab = 11, channels = 33;
  Floats table = random(vocab * channels), g = random(count * channels);
  std::vector<int32_t> ids(count);
  for (int64_t i = 0; i < count; ++i)
    ids[i] = int32_t(i * 7 % vocab); // repeated ids: their gradients add up
  Floats out(count * channels), dtable(vocab * channels);
  dtlrt::embedding(table.data(), ids.data(), out.data(), count, vocab, channels);
  dtlrt::embeddingGrad(ids.data(), g.data(), dtable.data(), count, vocab, channels);
  float *dOut = zeros(count * channels), *dTable = zeros(vocab * channels);
  int32_t *dIds = up(ids);
  dtlrt::cuda::embedding(up(table), dIds, dOut, count, vocab, channels);
  dtlrt::cuda::embeddingGrad(dIds, up(g), dTable, count, vocab, channels);
  expectNear(out, down(dOut, count * channels), 0, 0);
  expectNear(dtable, down(dTable, vocab * channels), 1e-5f, 1e-5f);

  // A block of rows [4, 8) of the table: other ids look up zeros and add
  // nothing to the gradient.
  const int64_t first = 4, rows = 4;
  Floats blockOut(count * channels), blockGrad(rows * channels);
  dtlrt::embedding(table.data() + first * channels, ids.data(), blockOut.data(), count, rows,
                   channels, first, vocab);
  dtlrt::embeddingGrad(ids.data(), g.data(), blockGrad.data(), count, rows, channels, first, vocab);
  float *dBlockOut = zeros(count * channels), *dBlockGrad = zeros(rows * channels);
  dtlrt::cuda::embedding(up(table) + first * channels, dIds, dBlockOut, count, rows, channels,
                         first, vocab);
  dtlrt::cuda::embeddingGrad(dIds, up(g), dBlockGrad, count, rows, channels, first, vocab);
  expectNear(blockOut, down(dBlockOut, count * channels), 0, 0);
  expectNear(blockGrad, down(dBlockGrad, rows * channels), 1e-5f, 1e-5f);
}

TEST_F(CudaKernels, CausalAttentionAndItsGradient) {
  const int64_t batch = 2, seq = 17, channels = 24, heads = 3, n = batch * seq * channels;
  Floats q = random(n), k = random(n), v = random(n), g = random(n);
  Floats out(n), lse(batch * heads * seq), dq(n), dk(n), dv(n);
  dtlrt::causalAttention(q.data(), k.data(), v.data(), out.data(), lse.data(), batch, seq, channels,
                         heads);
  dtlrt::causalAttentionGrad(q.data(), k.data(), v.data(), lse.data(), g.data(), dq.data(),
                             dk.data(), dv.data(), batch, seq, channels, heads);
  float *dQ = up(q), *dK = up(k), *dV = up(v), *dOut = zeros(n), *dLse = zeros(lse.size()),
        *dDq = zeros(n), *dDk = zeros(n), *dDv = zeros(n);
  dtlrt::cuda::causalAttention(dQ, dK, dV, dOut, dLse, batch, seq, channels, heads);
  dtlrt::cuda::causalAttentionGrad(dQ, dK, dV, dLse, up(g), dDq, dDk, dDv, batch, seq, channels,
                                   heads);
  expectNear(lse, down(dLse, lse.size()), 1e-4f, 1e-5f);
  expectNear(out, down(dOut, n), 1e-4f, 1e-5f);
  expectNear(dq, down(dDq, n), 1e-3f, 1e-5f);
  expectNear(dk, down(dDk, n), 1e-3f, 1e-5f);
  expectNear(dv, down(dDv, n), 1e-3f, 1e-5f);
}

TEST_F(CudaKernels, DropoutDrawsTheCpuTargetsMask) {
  // This rank holds rows [4, 8) and columns [10, 20) of a [12, 40] tensor.
  const int64_t local[] = {4, 10}, global[] = {12, 40}, offsets[] = {4, 10};
  Floats in = random(40), expected(40);
  float *out = zeros(40), *dIn = up(in);
  for (float step : {0.f, 3.f})
    for (int64_t layer : {-1, 2}) {
      dtlrt::dropout(in.data(), expected.data(), 2, local, global, offsets, 0.3, 42, 5, layer,
                     &step);
      dtlrt::cuda::dropout(dIn, out, 2, local, global, offsets, 0.3, 42, 5, layer,
                           up(Floats{step}));
      SCOPED_TRACE(testing::Message() << "step " << step << " layer " << layer);
      expectNear(expected, down(out, 40), 1e-6f, 0);
    }
}

TEST_F(CudaKernels, AdamwAndSgdUpdates) {
  const int64_t n = 1001;
  Floats p = random(n), g = random(n), m = random(n, 0.1f), v = random(n, 0.1f);
  for (float &x : v)
    x = std::fabs(x);
  Floats newP(n), newM(n), newV(n), sgdP(n), sgdBuf(n);
  // A clipping scale of 0.7; then a NaN one, which must skip the step.
  const float hostLr = 1e-3f, hostStep = 7.f, hostSgdLr = 1e-2f, hostScale = 0.7f;
  dtlrt::adamwUpdate(p.data(), g.data(), m.data(), v.data(), &hostLr, &hostStep, &hostScale, 0.9,
                     0.95, 1e-8, 0.1, newP.data(), newM.data(), newV.data(), n);
  dtlrt::sgdUpdate(p.data(), g.data(), m.data(), &hostSgdLr, &hostScale, 0.9, 1e-4, sgdP.data(),
                   sgdBuf.data(), n);
  float *dP = up(p), *dG = up(g), *dM = up(m), *dV = up(v), *lr = up(Floats{1e-3f}),
        *step = up(Floats{7.f}), *sgdLr = up(Floats{1e-2f}), *scale = up(Floats{0.7f}),
        *nan = up(Floats{NAN});
  float *outP = zeros(n), *outM = zeros(n), *outV = zeros(n), *outSgd = zeros(n),
        *outBuf = zeros(n);
  dtlrt::cuda::adamwUpdate(dP, dG, dM, dV, lr, step, scale, 0.9, 0.95, 1e-8, 0.1, outP, outM, outV,
                           n);
  dtlrt::cuda::sgdUpdate(dP, dG, dM, sgdLr, scale, 0.9, 1e-4, outSgd, outBuf, n);
  expectNear(newP, down(outP, n), 1e-5f, 1e-7f);
  expectNear(newM, down(outM, n), 1e-6f, 1e-8f);
  expectNear(newV, down(outV, n), 1e-6f, 1e-8f);
  expectNear(sgdP, down(outSgd, n), 1e-6f, 1e-8f);
  expectNear(sgdBuf, down(outBuf, n), 1e-6f, 1e-8f);
  dtlrt::cuda::adamwUpdate(dP, dG, dM, dV, lr, step, nan, 0.9, 0.95, 1e-8, 0.1, outP, outM, outV,
                           n);
  dtlrt::cuda::sgdUpdate(dP, dG, dM, sgdLr, nan, 0.9, 1e-4, outSgd, outBuf, n);
  EXPECT_EQ(down(outP, n), p);
  EXPECT_EQ(down(outV, n), v);
  EXPECT_EQ(down(outSgd, n), p);
  EXPECT_EQ(down(outBuf, n), m);
}

// bf16 storage (precision = bf16): the same kernels on bf16 values, against
// the CPU's bf16 kernels; both compute in f32, so results differ by the
// summation order and, where stored in bf16, by one rounding at most.

TEST_F(CudaKernels, Bf16GemmsWriteBf16OrF32) {
  const int64_t m = 37, n = 48, k = 40;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Bf16s a = randomBf16(m * k), b = randomBf16(k * n), bias = randomBf16(n), stored(m * n);
      Floats wide(m * n);
      dtlrt::matmul(ta, tb, m, n, k, a.data(), b.data(), bias.data(), stored.data());
      dtlrt::matmul(ta, tb, m, n, k, a.data(), b.data(), static_cast<const dtlrt::bf16 *>(nullptr),
                    wide.data());
      dtlrt::bf16 *dA = up(a), *dB = up(b), *dStored = zerosBf16(m * n);
      float *dWide = zeros(m * n);
      dtlrt::cuda::matmul(ta, tb, m, n, k, dA, dB, up(bias), dStored);
      dtlrt::cuda::matmul(ta, tb, m, n, k, dA, dB, static_cast<const dtlrt::bf16 *>(nullptr),
                          dWide);
      SCOPED_TRACE(testing::Message() << "ta " << ta << " tb " << tb);
      expectNear(widen(stored), widen(down(dStored, m * n)), 1e-2f, 1e-2f);
      expectNear(wide, down(dWide, m * n), 1e-4f, 1e-4f);
    }
}

TEST_F(CudaKernels, Bf16SumsIntoF32) { expectSumsLikeCpu(randomBf16(6 * 70 * 9)); }

TEST_F(CudaKernels, Bf16RowKernels) {
  const int64_t rows = 13, n = 300;
  Bf16s x = randomBf16(rows * n, 2.f), w = randomBf16(n), b = randomBf16(n),
        g = randomBf16(rows * n);
  auto [cpu, gpu] = layerNormOnBoth(x, w, b, g, rows, n);
  expectNear(cpu.out, gpu.out, 1e-2f, 1e-2f);
  expectNear(cpu.mean, gpu.mean);
  expectNear(cpu.rstd, gpu.rstd);
  expectNear(cpu.dx, gpu.dx, 1e-2f, 1e-2f);
  expectNear(cpu.dw, gpu.dw, 1e-3f, 1e-3f);
  expectNear(cpu.db, gpu.db, 1e-3f, 1e-3f);

  Bf16s soft(rows * n);
  dtlrt::softmax(x.data(), soft.data(), rows, n);
  dtlrt::bf16 *dX = up(x), *dSoft = zerosBf16(rows * n);
  dtlrt::cuda::softmax(dX, dSoft, rows, n);
  expectNear(widen(soft), widen(down(dSoft, rows * n)), 1e-2f, 1e-5f);

  // The classifier: f32 losses from bf16 logits, a bf16 gradient.
  std::vector<int32_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r)
    labels[r] = r % 5 == 4 ? -1 : int32_t(r * 23 % n);
  Floats loss(rows), seed = random(rows);
  Bf16s dlogits(rows * n);
  dtlrt::crossEntropy(x.data(), labels.data(), loss.data(), rows, n);
  dtlrt::crossEntropyGrad(x.data(), labels.data(), seed.data(), dlogits.data(), rows, n);
  int32_t *dLabels = up(labels);
  float *dLoss = zeros(rows);
  dtlrt::bf16 *dDlogits = zerosBf16(rows * n);
  dtlrt::cuda::crossEntropy(dX, dLabels, dLoss, rows, n);
  dtlrt::cuda::crossEntropyGrad(dX, dLabels, up(seed), dDlogits, rows, n);
  expectNear(loss, down(dLoss, rows), 1e-4f, 1e-4f);
  expectNear(widen(dlogits), widen(down(dDlogits, rows * n)), 1e-2f, 1e-6f);
}

TEST_F(CudaKernels, Bf16EmbeddingAttentionAndDropout) {
  const int64_t count = 50, vocab = 11, channels = 24;
  Bf16s table = randomBf16(vocab * channels), g = randomBf16(count * channels);
  std::vector<int32_t> ids(count);
  for (int64_t i = 0; i < count; ++i)
    ids[i] = int32_t(i * 7 % vocab);
  Bf16s looked(count * channels);
  Floats dtable(vocab * channels);
  dtlrt::embedding(table.data(), ids.data(), looked.data(), count, vocab, channels);
  dtlrt::embeddingGrad(ids.data(), g.data(), dtable.data(), count, vocab, channels);
  int32_t *dIds = up(ids);
  dtlrt::bf16 *dLooked = zerosBf16(count * channels);
  float *dTable = zeros(vocab * channels);
  dtlrt::cuda::embedding(up(table), dIds, dLooked, count, vocab, channels);
  dtlrt::cuda::embeddingGrad(dIds, up(g), dTable, count, vocab, channels);
  expectNear(widen(looked), widen(down(dLooked, count * channels)), 0, 0);
  expectNear(dtable, down(dTable, vocab * channels), 1e-5f, 1e-5f);

  const int64_t batch = 2, seq = 17, heads = 3, n = batch * seq * channels;
  Bf16s q = randomBf16(n), k = randomBf16(n), v = randomBf16(n), dy = randomBf16(n);
  Bf16s out(n), dq(n), dk(n), dv(n);
  Floats lse(batch * heads * seq);
  dtlrt::causalAttention(q.data(), k.data(), v.data(), out.data(), lse.data(), batch, seq, channels,
                         heads);
  dtlrt::causalAttentionGrad(q.data(), k.data(), v.data(), lse.data(), dy.data(), dq.data(),
                             dk.data(), dv.data(), batch, seq, channels, heads);
  dtlrt::bf16 *dQ = up(q), *dK = up(k), *dV = up(v), *dOut = zerosBf16(n), *dDq = zerosBf16(n),
              *dDk = zerosBf16(n), *dDv = zerosBf16(n);
  float *dLse = zeros(lse.size());
  dtlrt::cuda::causalAttention(dQ, dK, dV, dOut, dLse, batch, seq, channels, heads);
  dtlrt::cuda::causalAttentionGrad(dQ, dK, dV, dLse, up(dy), dDq, dDk, dDv, batch, seq, channels,
                                   heads);
  expectNear(lse, down(dLse, lse.size()), 1e-4f, 1e-4f);
  expectNear(widen(out), widen(down(dOut, n)), 1e-2f, 1e-2f);
  expectNear(widen(dq), widen(down(dDq, n)), 2e-2f, 2e-2f);
  expectNear(widen(dk), widen(down(dDk, n)), 2e-2f, 2e-2f);
  expectNear(widen(dv), widen(down(dDv, n)), 2e-2f, 2e-2f);

  const int64_t local[] = {4, 10}, global[] = {12, 40}, offsets[] = {4, 10};
  Bf16s in = randomBf16(40), kept(40);
  const float step = 3.f;
  dtlrt::dropout(in.data(), kept.data(), 2, local, global, offsets, 0.3, 42, 5, 2, &step);
  dtlrt::bf16 *dKept = zerosBf16(40);
  dtlrt::cuda::dropout(up(in), dKept, 2, local, global, offsets, 0.3, 42, 5, 2, up(Floats{step}));
  expectNear(widen(kept), widen(down(dKept, 40)), 0, 0);
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  MPI_Finalize();
  return rc;
}
