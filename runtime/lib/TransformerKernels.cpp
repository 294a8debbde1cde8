//===- TransformerKernels.cpp - the row-wise and attention kernels of a GPT ===//
//
// Plain loops over contiguous rows, parallel over rows (or batch x heads)
// with OpenMP; each kernel's math is above its declaration in Kernels.h.
//
//===----------------------------------------------------------------------===//

#include "dtlrt/Data.h"
#include "dtlrt/KernelInstances.h"
#include "dtlrt/Kernels.h"

#include "Blas.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace dtlrt {

/// Row kernels go parallel once there is this much work.
constexpr int64_t kParallelWork = 32768;

template <typename T> void softmax(const T *in, T *out, int64_t rows, int64_t n) {
  using A = Acc<T>;
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *x = in + r * n;
    T *y = out + r * n;
    A max = *std::max_element(x, x + n), sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i)
      sum += fastExp(A(x[i]) - max);
    A inv = A(1) / sum;
    for (int64_t i = 0; i < n; ++i)
      y[i] = fastExp(A(x[i]) - max) * inv;
  }
}

template <typename T> void softmaxGrad(const T *y, const T *g, T *out, int64_t rows, int64_t n) {
  using A = Acc<T>;
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *yr = y + r * n, *gr = g + r * n;
    A dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n; ++i)
      dot += A(yr[i]) * A(gr[i]);
    for (int64_t i = 0; i < n; ++i)
      out[r * n + i] = A(yr[i]) * (A(gr[i]) - dot);
  }
}

template <typename T>
void layerNorm(const T *x, const T *w, const T *b, double eps, T *out, Acc<T> *mean, Acc<T> *rstd,
               int64_t rows, int64_t n) {
  using A = Acc<T>;
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * n;
    A sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i)
      sum += A(xr[i]);
    A mu = sum / A(n), var = 0;
#pragma omp simd reduction(+ : var)
    for (int64_t i = 0; i < n; ++i)
      var += (A(xr[i]) - mu) * (A(xr[i]) - mu);
    A s = A(1) / std::sqrt(var / A(n) + A(eps));
    T *o = out + r * n;
    for (int64_t i = 0; i < n; ++i)
      o[i] = (A(xr[i]) - mu) * s * A(w[i]) + A(b[i]);
    mean[r] = mu;
    rstd[r] = s;
  }
}

template <typename T>
void layerNormGradInput(const T *x, const T *w, const Acc<T> *mean, const Acc<T> *rstd, const T *g,
                        T *out, int64_t rows, int64_t n) {
  using A = Acc<T>;
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * n, *gr = g + r * n;
    A mu = mean[r], s = rstd[r], meanD = 0, meanDX = 0;
#pragma omp simd reduction(+ : meanD, meanDX)
    for (int64_t i = 0; i < n; ++i) {
      A d = A(gr[i]) * A(w[i]);
      meanD += d;
      meanDX += d * (A(xr[i]) - mu) * s;
    }
    meanD /= A(n);
    meanDX /= A(n);
    T *o = out + r * n;
    for (int64_t i = 0; i < n; ++i)
      o[i] = s * (A(gr[i]) * A(w[i]) - meanD - (A(xr[i]) - mu) * s * meanDX);
  }
}

template <typename T, typename U>
void layerNormGradParams(const T *x, const Acc<T> *mean, const Acc<T> *rstd, const T *g, U *dw,
                         U *db, int64_t rows, int64_t n) {
  using A = Acc<T>;
  std::vector<A> totalW(n, A(0)), totalB(n, A(0));
#pragma omp parallel if (rows * n > kParallelWork)
  {
    std::vector<A> w(n, A(0)), b(n, A(0));
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * n, *gr = g + r * n;
      A mu = mean[r], s = rstd[r];
      for (int64_t i = 0; i < n; ++i) {
        w[i] += A(gr[i]) * (A(xr[i]) - mu) * s;
        b[i] += A(gr[i]);
      }
    }
#pragma omp critical
    for (int64_t i = 0; i < n; ++i) {
      totalW[i] += w[i];
      totalB[i] += b[i];
    }
  }
  std::copy(totalW.begin(), totalW.end(), dw);
  std::copy(totalB.begin(), totalB.end(), db);
}

static void checkIds(const int32_t *ids, int64_t count, int64_t vocab) {
  for (int64_t i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw DataError("a token id is " + std::to_string(ids[i]) + ", but the embedding table has " +
                      std::to_string(vocab) + " rows (ids must be 0.." + std::to_string(vocab - 1) +
                      ")");
}

template <typename T>
void embedding(const T *table, const int32_t *ids, T *out, int64_t count, int64_t rows,
               int64_t channels, int64_t first, int64_t vocab) {
  checkIds(ids, count, vocab ? vocab : rows);
#pragma omp parallel for if (count * channels > kParallelWork)
  for (int64_t i = 0; i < count; ++i) {
    int64_t row = int64_t(ids[i]) - first;
    if (row >= 0 && row < rows)
      std::memcpy(out + i * channels, table + row * channels, channels * sizeof(T));
    else
      std::fill(out + i * channels, out + (i + 1) * channels, T(0));
  }
}

template <typename T, typename U>
void embeddingGrad(const int32_t *ids, const T *g, U *out, int64_t count, int64_t rows,
                   int64_t channels, int64_t first, int64_t vocab) {
  checkIds(ids, count, vocab ? vocab : rows);
  std::fill(out, out + rows * channels, U(0));
  // Parallel over channel blocks: rows that share an id never race.
  constexpr int64_t kBlock = 64;
#pragma omp parallel for if (count * channels > kParallelWork)
  for (int64_t c0 = 0; c0 < channels; c0 += kBlock) {
    int64_t c1 = std::min(channels, c0 + kBlock);
    for (int64_t i = 0; i < count; ++i) {
      int64_t row = int64_t(ids[i]) - first;
      if (row < 0 || row >= rows)
        continue;
      U *o = out + row * channels;
      const T *gi = g + i * channels;
      for (int64_t c = c0; c < c1; ++c)
        o[c] = Acc<U>(o[c]) + Acc<U>(gi[c]);
    }
  }
}

// Attention per (batch, head), as BLAS GEMMs over the head's strided
// [T, d] slices of q, k, v (row stride C), one tile of query rows at a
// time: a tile's keys run to its last row, so part of the masked half is
// computed and discarded; at these sizes BLAS still beats a scalar loop
// several times over.

/// Query rows per tile: a tile's scores [rows, keys] stay in cache (at most
/// 64 x T reals per thread) instead of a [T, T] matrix per head.
constexpr int64_t kAttentionRows = 64;

/// Causal scores of one query tile, scaled: s[i, j] = q[t0 + i] . k[j] * scale.
template <typename A>
static void tileScores(const A *q, const A *k, int64_t ld, A *scores, int64_t t0, int64_t rows,
                       int64_t keys, int64_t d, A scale) {
  gemm(false, true, rows, keys, d, scale, q + t0 * ld, ld, k, ld, A(0), scores, keys);
}

// One head, tile by tile: softmax of each row's scores, its log-sum-exp
// kept for the gradient, then the tile's output rows. q, k, v and out are
// [seq, d] with row stride ld; `scores` holds one tile.
template <typename A>
static void attentionHead(const A *q, const A *k, const A *v, A *out, int64_t ld, A *lse,
                          int64_t seq, int64_t d, A *scores) {
  const A scale = A(1) / std::sqrt(A(d));
  for (int64_t t0 = 0; t0 < seq; t0 += kAttentionRows) {
    const int64_t rows = std::min(kAttentionRows, seq - t0), keys = t0 + rows;
    tileScores(q, k, ld, scores, t0, rows, keys, d, scale);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t t = t0 + i;
      A *row = scores + i * keys;
      A max = *std::max_element(row, row + t + 1), sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t s = 0; s <= t; ++s)
        sum += row[s] = fastExp(row[s] - max);
      lse[t] = max + std::log(sum);
      A inv = A(1) / sum;
#pragma omp simd
      for (int64_t s = 0; s <= t; ++s)
        row[s] *= inv;
      std::fill(row + t + 1, row + keys, A(0));
    }
    gemm(false, false, rows, d, keys, A(1), scores, keys, v, ld, A(0), out + t0 * ld, ld);
  }
}

// One head's gradients, tile by tile, with P recomputed from the scores and
// the saved log-sum-exp (P = exp(S - lse)) and g the output's gradient:
// dv += P^T g, dP = g v^T, dS = P * (dP - rowsum(dP * P)) / sqrt(d),
// dq = dS k, dk += dS^T q. A tile's keys are the positions up to its last
// row, so dk and dv accumulate over the tiles.
template <typename A>
static void attentionHeadGrad(const A *q, const A *k, const A *v, const A *lse, const A *g, A *dq,
                              A *dk, A *dv, int64_t ld, int64_t seq, int64_t d, A *p, A *ds) {
  const A scale = A(1) / std::sqrt(A(d));
  for (int64_t s = 0; s < seq; ++s) {
    std::fill_n(dk + s * ld, d, A(0));
    std::fill_n(dv + s * ld, d, A(0));
  }
  for (int64_t t0 = 0; t0 < seq; t0 += kAttentionRows) {
    const int64_t rows = std::min(kAttentionRows, seq - t0), keys = t0 + rows;
    const int64_t at = t0 * ld;
    tileScores(q, k, ld, p, t0, rows, keys, d, scale);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t t = t0 + i;
      A *row = p + i * keys;
#pragma omp simd
      for (int64_t s = 0; s <= t; ++s)
        row[s] = fastExp(row[s] - lse[t]);
      std::fill(row + t + 1, row + keys, A(0));
    }
    gemm(true, false, keys, d, rows, A(1), p, keys, g + at, ld, A(1), dv, ld);
    gemm(false, true, rows, keys, d, A(1), g + at, ld, v, ld, A(0), ds, keys);
    for (int64_t i = 0; i < rows; ++i) {
      const A *pr = p + i * keys;
      A *dr = ds + i * keys, weighted = 0;
#pragma omp simd reduction(+ : weighted)
      for (int64_t s = 0; s < keys; ++s)
        weighted += pr[s] * dr[s];
#pragma omp simd
      for (int64_t s = 0; s < keys; ++s)
        dr[s] = pr[s] * (dr[s] - weighted) * scale;
    }
    gemm(false, false, rows, d, keys, A(1), ds, keys, k, ld, A(0), dq + at, ld);
    gemm(true, false, keys, d, rows, A(1), ds, keys, q + at, ld, A(1), dk, ld);
  }
}

/// A head of stored values as the kernels compute on it: f32 and f64 are
/// read in place (row stride `channels`); bf16 is widened into `scratch`
/// ([seq, d], stride d) and narrowed back by `store`.
template <typename T> struct HeadView {
  using A = Acc<T>;
  static constexpr bool kInPlace = std::is_same_v<T, A>;
  int64_t seq, d, channels;
  int64_t ld() const { return kInPlace ? channels : d; }
  const A *load(const T *head, std::vector<A> &scratch) const {
    if constexpr (kInPlace)
      return head;
    scratch.resize(seq * d);
    for (int64_t t = 0; t < seq; ++t)
      std::copy_n(head + t * channels, d, scratch.data() + t * d);
    return scratch.data();
  }
  A *output(T *head, std::vector<A> &scratch) const {
    if constexpr (kInPlace)
      return head;
    scratch.resize(seq * d);
    return scratch.data();
  }
  void store(const A *computed, T *head) const {
    if constexpr (!kInPlace)
      for (int64_t t = 0; t < seq; ++t)
        std::copy_n(computed + t * d, d, head + t * channels);
  }
};

// Heads in parallel, each GEMM on one thread (BLAS runs single-threaded
// inside a parallel region).
template <typename T>
void causalAttention(const T *q, const T *k, const T *v, T *out, Acc<T> *lse, int64_t batch,
                     int64_t seq, int64_t channels, int64_t heads) {
  using A = Acc<T>;
  const HeadView<T> view{seq, channels / heads, channels};
#pragma omp parallel
  {
    std::vector<A> scores(std::min(kAttentionRows, seq) * seq), sq, sk, sv, so;
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t head = b * seq * channels + h * view.d;
        A *o = view.output(out + head, so);
        attentionHead(view.load(q + head, sq), view.load(k + head, sk), view.load(v + head, sv), o,
                      view.ld(), lse + (b * heads + h) * seq, seq, view.d, scores.data());
        view.store(o, out + head);
      }
  }
}

template <typename T>
void causalAttentionGrad(const T *q, const T *k, const T *v, const Acc<T> *lse, const T *g, T *dq,
                         T *dk, T *dv, int64_t batch, int64_t seq, int64_t channels,
                         int64_t heads) {
  using A = Acc<T>;
  const HeadView<T> view{seq, channels / heads, channels};
#pragma omp parallel
  {
    const int64_t tile = std::min(kAttentionRows, seq) * seq;
    std::vector<A> probs(tile), dp(tile), sq, sk, sv, sg, sdq, sdk, sdv;
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t head = b * seq * channels + h * view.d;
        A *dqh = view.output(dq + head, sdq), *dkh = view.output(dk + head, sdk),
          *dvh = view.output(dv + head, sdv);
        attentionHeadGrad(view.load(q + head, sq), view.load(k + head, sk), view.load(v + head, sv),
                          lse + (b * heads + h) * seq, view.load(g + head, sg), dqh, dkh, dvh,
                          view.ld(), seq, view.d, probs.data(), dp.data());
        view.store(dqh, dq + head);
        view.store(dkh, dk + head);
        view.store(dvh, dv + head);
      }
  }
}

std::string dropoutStream(int64_t stream, int64_t layer) {
  return "dropout" + std::to_string(stream) + (layer >= 0 ? "." + std::to_string(layer) : "") + "@";
}

template <typename T>
void dropout(const T *in, T *out, int rank, const int64_t *localShape, const int64_t *globalShape,
             const int64_t *offsets, double rate, uint64_t seed, int64_t stream, int64_t layer,
             const Acc<T> *stepAt) {
  const int64_t step = int64_t(*stepAt);
  int64_t n = 1;
  for (int d = 0; d < rank; ++d)
    n *= localShape[d];
  if (step <= 0 || rate <= 0) {
    std::memcpy(out, in, n * sizeof(T));
    return;
  }
  const Acc<T> scale = Acc<T>(1 / (1 - rate));
  const std::string key = dropoutStream(stream, layer) + std::to_string(step);
#pragma omp parallel for if (n > kParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    int64_t rest = i, global = 0, stride = 1;
    for (int d = rank - 1; d >= 0; --d) {
      global += (rest % localShape[d] + offsets[d]) * stride;
      rest /= localShape[d];
      stride *= globalShape[d];
    }
    out[i] = uniformAt(seed, key, uint64_t(global)) >= rate ? Acc<T>(in[i]) * scale : Acc<T>(0);
  }
}

DTLRT_INSTANTIATE_TRANSFORMER(float)
DTLRT_INSTANTIATE_TRANSFORMER(double)
DTLRT_INSTANTIATE_TRANSFORMER(bf16)
DTLRT_INSTANTIATE_TRANSFORMER_GRADS(float, float)
DTLRT_INSTANTIATE_TRANSFORMER_GRADS(double, double)
DTLRT_INSTANTIATE_TRANSFORMER_GRADS(bf16, bf16)
DTLRT_INSTANTIATE_TRANSFORMER_GRADS(bf16, float)

} // namespace dtlrt
