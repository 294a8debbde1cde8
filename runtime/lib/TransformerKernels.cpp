//===- TransformerKernels.cpp - the row-wise and attention kernels of a GPT ===//
//
// Plain loops over contiguous rows, parallel over rows (or batch x heads)
// with OpenMP; each kernel's math is above its declaration in Kernels.h.
//
//===----------------------------------------------------------------------===//

#include "dtlrt/Data.h"
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
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *x = in + r * n;
    T *y = out + r * n;
    T max = *std::max_element(x, x + n), sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i)
      sum += y[i] = fastExp(x[i] - max);
    T inv = T(1) / sum;
    for (int64_t i = 0; i < n; ++i)
      y[i] *= inv;
  }
}

template <typename T> void softmaxGrad(const T *y, const T *g, T *out, int64_t rows, int64_t n) {
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *yr = y + r * n, *gr = g + r * n;
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n; ++i)
      dot += yr[i] * gr[i];
    for (int64_t i = 0; i < n; ++i)
      out[r * n + i] = yr[i] * (gr[i] - dot);
  }
}

template <typename T>
void layerNorm(const T *x, const T *w, const T *b, double eps, T *out, T *mean, T *rstd,
               int64_t rows, int64_t n) {
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * n;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i)
      sum += xr[i];
    T mu = sum / T(n), var = 0;
#pragma omp simd reduction(+ : var)
    for (int64_t i = 0; i < n; ++i)
      var += (xr[i] - mu) * (xr[i] - mu);
    T s = T(1) / std::sqrt(var / T(n) + T(eps));
    T *o = out + r * n;
    for (int64_t i = 0; i < n; ++i)
      o[i] = (xr[i] - mu) * s * w[i] + b[i];
    mean[r] = mu;
    rstd[r] = s;
  }
}

template <typename T>
void layerNormGradInput(const T *x, const T *w, const T *mean, const T *rstd, const T *g, T *out,
                        int64_t rows, int64_t n) {
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * n, *gr = g + r * n;
    T mu = mean[r], s = rstd[r], meanD = 0, meanDX = 0;
#pragma omp simd reduction(+ : meanD, meanDX)
    for (int64_t i = 0; i < n; ++i) {
      T d = gr[i] * w[i];
      meanD += d;
      meanDX += d * (xr[i] - mu) * s;
    }
    meanD /= T(n);
    meanDX /= T(n);
    T *o = out + r * n;
    for (int64_t i = 0; i < n; ++i)
      o[i] = s * (gr[i] * w[i] - meanD - (xr[i] - mu) * s * meanDX);
  }
}

template <typename T>
void layerNormGradParams(const T *x, const T *mean, const T *rstd, const T *g, T *dw, T *db,
                         int64_t rows, int64_t n) {
  std::fill(dw, dw + n, T(0));
  std::fill(db, db + n, T(0));
#pragma omp parallel if (rows * n > kParallelWork)
  {
    std::vector<T> w(n, T(0)), b(n, T(0));
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * n, *gr = g + r * n;
      T mu = mean[r], s = rstd[r];
      for (int64_t i = 0; i < n; ++i) {
        w[i] += gr[i] * (xr[i] - mu) * s;
        b[i] += gr[i];
      }
    }
#pragma omp critical
    for (int64_t i = 0; i < n; ++i) {
      dw[i] += w[i];
      db[i] += b[i];
    }
  }
}

static void checkIds(const int32_t *ids, int64_t count, int64_t vocab) {
  for (int64_t i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw DataError("a token id is " + std::to_string(ids[i]) + ", but the embedding table has " +
                      std::to_string(vocab) + " rows (ids must be 0.." + std::to_string(vocab - 1) +
                      ")");
}

template <typename T>
void embedding(const T *table, const int32_t *ids, T *out, int64_t count, int64_t vocab,
               int64_t channels) {
  checkIds(ids, count, vocab);
#pragma omp parallel for if (count * channels > kParallelWork)
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(out + i * channels, table + int64_t(ids[i]) * channels, channels * sizeof(T));
}

template <typename T>
void embeddingGrad(const int32_t *ids, const T *g, T *out, int64_t count, int64_t vocab,
                   int64_t channels) {
  checkIds(ids, count, vocab);
  std::fill(out, out + vocab * channels, T(0));
  // Parallel over channel blocks: rows that share an id never race.
  constexpr int64_t kBlock = 64;
#pragma omp parallel for if (count * channels > kParallelWork)
  for (int64_t c0 = 0; c0 < channels; c0 += kBlock) {
    int64_t c1 = std::min(channels, c0 + kBlock);
    for (int64_t i = 0; i < count; ++i) {
      T *o = out + int64_t(ids[i]) * channels;
      const T *gi = g + i * channels;
      for (int64_t c = c0; c < c1; ++c)
        o[c] += gi[c];
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
template <typename T>
static void tileScores(const T *q, const T *k, T *scores, int64_t t0, int64_t rows, int64_t keys,
                       int64_t d, int64_t channels, T scale) {
  gemm(false, true, rows, keys, d, scale, q + t0 * channels, channels, k, channels, T(0), scores,
       keys);
}

// Tile by tile: softmax of each row's scores, its log-sum-exp kept for the
// gradient, then the tile's output rows.
template <typename T>
void causalAttention(const T *q, const T *k, const T *v, T *out, T *lse, int64_t batch, int64_t seq,
                     int64_t channels, int64_t heads) {
  const int64_t d = channels / heads;
  const T scale = T(1) / std::sqrt(T(d));
  // Heads in parallel, each GEMM on one thread (BLAS runs single-threaded
  // inside a parallel region).
#pragma omp parallel
  {
    std::vector<T> scores(std::min(kAttentionRows, seq) * seq);
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t head = b * seq * channels + h * d;
        T *headLse = lse + (b * heads + h) * seq;
        for (int64_t t0 = 0; t0 < seq; t0 += kAttentionRows) {
          const int64_t rows = std::min(kAttentionRows, seq - t0), keys = t0 + rows;
          tileScores(q + head, k + head, scores.data(), t0, rows, keys, d, channels, scale);
          for (int64_t i = 0; i < rows; ++i) {
            const int64_t t = t0 + i;
            T *row = scores.data() + i * keys;
            T max = *std::max_element(row, row + t + 1), sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t s = 0; s <= t; ++s)
              sum += row[s] = fastExp(row[s] - max);
            headLse[t] = max + std::log(sum);
            T inv = T(1) / sum;
#pragma omp simd
            for (int64_t s = 0; s <= t; ++s)
              row[s] *= inv;
            std::fill(row + t + 1, row + keys, T(0));
          }
          gemm(false, false, rows, d, keys, T(1), scores.data(), keys, v + head, channels, T(0),
               out + head + t0 * channels, channels);
        }
      }
  }
}

// Tile by tile, with P recomputed from the scores and the saved log-sum-exp
// (P = exp(S - lse)) and g the output's gradient:
// dv += P^T g, dP = g v^T, dS = P * (dP - rowsum(dP * P)) / sqrt(d),
// dq = dS k, dk += dS^T q. A tile's keys are the positions up to its last
// row, so dk and dv accumulate over the tiles.
template <typename T>
void causalAttentionGrad(const T *q, const T *k, const T *v, const T *lse, const T *g, T *dq, T *dk,
                         T *dv, int64_t batch, int64_t seq, int64_t channels, int64_t heads) {
  const int64_t d = channels / heads;
  const T scale = T(1) / std::sqrt(T(d));
#pragma omp parallel
  {
    const int64_t tile = std::min(kAttentionRows, seq) * seq;
    std::vector<T> probs(tile), dp(tile);
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t head = b * seq * channels + h * d;
        const T *headLse = lse + (b * heads + h) * seq;
        for (int64_t s = 0; s < seq; ++s) {
          std::fill_n(dk + head + s * channels, d, T(0));
          std::fill_n(dv + head + s * channels, d, T(0));
        }
        for (int64_t t0 = 0; t0 < seq; t0 += kAttentionRows) {
          const int64_t rows = std::min(kAttentionRows, seq - t0), keys = t0 + rows;
          const int64_t at = head + t0 * channels;
          T *p = probs.data(), *ds = dp.data();
          tileScores(q + head, k + head, p, t0, rows, keys, d, channels, scale);
          for (int64_t i = 0; i < rows; ++i) {
            const int64_t t = t0 + i;
            T *row = p + i * keys;
#pragma omp simd
            for (int64_t s = 0; s <= t; ++s)
              row[s] = fastExp(row[s] - headLse[t]);
            std::fill(row + t + 1, row + keys, T(0));
          }
          gemm(true, false, keys, d, rows, T(1), p, keys, g + at, channels, T(1), dv + head,
               channels);
          gemm(false, true, rows, keys, d, T(1), g + at, channels, v + head, channels, T(0), ds,
               keys);
          for (int64_t i = 0; i < rows; ++i) {
            const T *pr = p + i * keys;
            T *dr = ds + i * keys, weighted = 0;
#pragma omp simd reduction(+ : weighted)
            for (int64_t s = 0; s < keys; ++s)
              weighted += pr[s] * dr[s];
#pragma omp simd
            for (int64_t s = 0; s < keys; ++s)
              dr[s] = pr[s] * (dr[s] - weighted) * scale;
          }
          gemm(false, false, rows, d, keys, T(1), ds, keys, k + head, channels, T(0), dq + at,
               channels);
          gemm(true, false, keys, d, rows, T(1), ds, keys, q + at, channels, T(1), dk + head,
               channels);
        }
      }
  }
}

std::string dropoutStream(int64_t stream, int64_t layer) {
  return "dropout" + std::to_string(stream) + (layer >= 0 ? "." + std::to_string(layer) : "") + "@";
}

template <typename T>
void dropout(const T *in, T *out, int rank, const int64_t *localShape, const int64_t *globalShape,
             const int64_t *offsets, double rate, uint64_t seed, int64_t stream, int64_t layer,
             const T *stepAt) {
  const int64_t step = int64_t(*stepAt);
  int64_t n = 1;
  for (int d = 0; d < rank; ++d)
    n *= localShape[d];
  if (step <= 0 || rate <= 0) {
    std::memcpy(out, in, n * sizeof(T));
    return;
  }
  const T scale = T(1 / (1 - rate));
  const std::string key = dropoutStream(stream, layer) + std::to_string(step);
#pragma omp parallel for if (n > kParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    int64_t rest = i, global = 0, stride = 1;
    for (int d = rank - 1; d >= 0; --d) {
      global += (rest % localShape[d] + offsets[d]) * stride;
      rest /= localShape[d];
      stride *= globalShape[d];
    }
    out[i] = uniformAt(seed, key, uint64_t(global)) >= rate ? in[i] * scale : T(0);
  }
}

#define DTLRT_INSTANTIATE(T)                                                                       \
  template void softmax<T>(const T *, T *, int64_t, int64_t);                                      \
  template void softmaxGrad<T>(const T *, const T *, T *, int64_t, int64_t);                       \
  template void layerNorm<T>(const T *, const T *, const T *, double, T *, T *, T *, int64_t,      \
                             int64_t);                                                             \
  template void layerNormGradInput<T>(const T *, const T *, const T *, const T *, const T *, T *,  \
                                      int64_t, int64_t);                                           \
  template void layerNormGradParams<T>(const T *, const T *, const T *, const T *, T *, T *,       \
                                       int64_t, int64_t);                                          \
  template void embedding<T>(const T *, const int32_t *, T *, int64_t, int64_t, int64_t);          \
  template void embeddingGrad<T>(const int32_t *, const T *, T *, int64_t, int64_t, int64_t);      \
  template void causalAttention<T>(const T *, const T *, const T *, T *, T *, int64_t, int64_t,    \
                                   int64_t, int64_t);                                              \
  template void causalAttentionGrad<T>(const T *, const T *, const T *, const T *, const T *, T *, \
                                       T *, T *, int64_t, int64_t, int64_t, int64_t);              \
  template void dropout<T>(const T *, T *, int, const int64_t *, const int64_t *, const int64_t *, \
                           double, uint64_t, int64_t, int64_t, const T *);
DTLRT_INSTANTIATE(float)
DTLRT_INSTANTIATE(double)

} // namespace dtlrt
