//===- Kernels.h - the CPU kernels generated code calls ---------*- C++ -*-===//
//
// One small function per kernel, the math it computes in a comment above
// it (llm.c style). Elementwise loops are emitted inline by codegen; these
// are the ones worth a library: GEMM and the row-wise and optimizer kernels.
// They take the same arguments as libdtlrt_cuda's (dtlrt/Cuda.h), so one
// printer calls both; scalars a step computes (lr, step) are pointers.
// T is how values are stored (float, double or bf16); statistics, losses
// and scalars are Acc<T> (float for bf16), and results a kernel can write
// in either precision (GEMMs, sums, parameter gradients) have a type U.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_KERNELS_H
#define DTLRT_KERNELS_H

#include "dtlrt/Bf16.h"
#include "dtlrt/Math.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace dtlrt {

// c[m, n] = op(a) @ op(b) (+ bias[n] when bias is not null), op(x) = x or
// x^T; a is [m, k] (or [k, m]). With a bias, c starts as the bias rows and
// the GEMM accumulates onto them. bf16 GEMMs run on oneDNN (AVX512-BF16 or
// AMX where the CPU has them) and accumulate in f32.
template <typename T, typename U>
void matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const T *a, const T *b,
            const T *bias, U *c);

// out[i] = in[sum_d index_d(i) * inStrides[d]] over out's `rank` dims; a
// stride of 0 repeats the input along that dimension (numpy broadcasting).
template <typename T>
void broadcast(const T *in, T *out, const int64_t *outShape, const int64_t *inStrides, int rank);

// out[sum_d index_d(i) * outStrides[d]] = in[i] over in's `rank` dims: the
// inverse of a gather, placing a piece of a concat among the others.
template <typename T>
void place(const T *in, T *out, const int64_t *inShape, const int64_t *outStrides, int rank);

// out = in summed over the dimensions d with reduced[d] (accumulated in
// double); out holds the other dimensions in order.
template <typename T, typename U>
void reduceSum(const T *in, U *out, const int64_t *inShape, const bool *reduced, int rank);

// out[b] = logsumexp(logits[b, :]) - logits[b, labels[b]]; 0 when labels[b] < 0.
template <typename T>
void crossEntropy(const T *logits, const int32_t *labels, Acc<T> *out, int64_t batch,
                  int64_t classes);

// out[b, c] = grad[b] * (softmax(logits[b, :])[c] - (c == labels[b])).
// Logits split along the classes hold classes [first, first + classes) of
// `vocab`, and `lse` gives each row's log-sum-exp over all of them.
template <typename T>
void crossEntropyGrad(const T *logits, const int32_t *labels, const Acc<T> *grad, T *out,
                      int64_t batch, int64_t classes, const Acc<T> *lse = nullptr,
                      int64_t first = 0, int64_t vocab = 0);

// One rank's part of a cross-entropy over classes [first, first + classes)
// of `vocab`: parts[b] = logsumexp(logits[b, :]), parts[batch + b] =
// logits[b, labels[b] - first] when the label is in the block, else 0.
template <typename T>
void crossEntropyPartial(const T *logits, const int32_t *labels, Acc<T> *parts, int64_t batch,
                         int64_t classes, int64_t first, int64_t vocab);

// From `ranks` parts gathered ([2 ranks, batch]): lse[b] = logsumexp over
// the ranks' log-sum-exps, loss[b] = lse[b] - (sum of the label logits), 0
// when labels[b] < 0.
template <typename T>
void crossEntropyCombine(const T *parts, const int32_t *labels, T *loss, T *lse, int64_t batch,
                         int64_t ranks);

// out[b] = argmax(logits[b, :]) == labels[b].
template <typename T>
void correct(const T *logits, const int32_t *labels, Acc<T> *out, int64_t batch, int64_t classes);

// One rank's part of an argmax over classes [first, first + classes):
// parts[b] = max(logits[b, :]), parts[batch + b] = first + its first index.
template <typename T>
void argmaxPartial(const T *logits, Acc<T> *parts, int64_t batch, int64_t classes, int64_t first);

// From `ranks` parts gathered ([2 ranks, batch]): out[b] = 1 where the class
// of the largest maximum (the first rank's on ties) is labels[b], else 0.
template <typename T>
void correctCombine(const T *parts, const int32_t *labels, T *out, int64_t batch, int64_t ranks);

// torch.optim.AdamW, t = *step (1-based), at learning rate *lr, on the
// gradient times *gradScale; a non-finite *gradScale skips the step (the
// results equal the inputs).
template <typename T>
void adamwUpdate(const T *param, const T *grad, const T *m, const T *v, const T *lr, const T *step,
                 const T *gradScale, double beta1, double beta2, double eps, double weightDecay,
                 T *newParam, T *newM, T *newV, int64_t n);

// torch.optim.SGD with momentum (no dampening) and weight decay; the
// gradient scale as in adamwUpdate.
template <typename T>
void sgdUpdate(const T *param, const T *grad, const T *buf, const T *lr, const T *gradScale,
               double momentum, double weightDecay, T *newParam, T *newBuf, int64_t n);

// What updates multiply gradients by (dtl.grad_scale): NaN when the loss or
// the norm is not finite (skip the step), else min(1, maxNorm / (norm +
// 1e-6)), or 1 without clipping (maxNorm 0).
template <typename T> inline T gradScale(T loss, T norm, T maxNorm) {
  if (!std::isfinite(loss) || !std::isfinite(norm))
    return std::numeric_limits<T>::quiet_NaN();
  if (maxNorm <= T(0))
    return T(1);
  T scale = maxNorm / (norm + T(1e-6));
  return scale < T(1) ? scale : T(1);
}

// Transformer kernels (TransformerKernels.cpp); "rows" count every leading
// index, `n` or `channels` is the last dimension.

// A sum over the iterations of an accumulating loop (gradient
// accumulation): out = in on the first iteration, out += in after.
template <typename T> void accumulate(const T *in, T *out, int64_t count, bool first);

// out[r, :] = softmax(in[r, :]).
template <typename T> void softmax(const T *in, T *out, int64_t rows, int64_t n);

// out[r, :] = y[r, :] * (g[r, :] - sum(g[r, :] * y[r, :])), y = softmax output.
template <typename T> void softmaxGrad(const T *y, const T *g, T *out, int64_t rows, int64_t n);

// out[r, :] = (x[r, :] - mean[r]) * rstd[r] * w + b, rstd = 1 / sqrt(var + eps).
template <typename T>
void layerNorm(const T *x, const T *w, const T *b, double eps, T *out, Acc<T> *mean, Acc<T> *rstd,
               int64_t rows, int64_t n);

// out = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * w.
template <typename T>
void layerNormGradInput(const T *x, const T *w, const Acc<T> *mean, const Acc<T> *rstd, const T *g,
                        T *out, int64_t rows, int64_t n);

// dw = sum over rows of g * xhat, db = sum over rows of g.
template <typename T, typename U>
void layerNormGradParams(const T *x, const Acc<T> *mean, const Acc<T> *rstd, const T *g, U *dw,
                         U *db, int64_t rows, int64_t n);

// out[i, :] = table[ids[i], :]; an id outside [0, vocab) is a DataError. A
// table split by rows holds rows [first, first + rows) of `vocab` (0: the
// whole table), and ids outside the block look up zeros.
template <typename T>
void embedding(const T *table, const int32_t *ids, T *out, int64_t count, int64_t rows,
               int64_t channels, int64_t first = 0, int64_t vocab = 0);

// out = zeros(rows, channels); out[ids[i] - first, :] += g[i, :] for the ids
// in the block (as for embedding).
template <typename T, typename U>
void embeddingGrad(const int32_t *ids, const T *g, U *out, int64_t count, int64_t rows,
                   int64_t channels, int64_t first = 0, int64_t vocab = 0);

// Causal self-attention over [batch, seq, channels] with `heads` heads, as
// FlashAttention computes it: with P[b, h, t, s] = softmax_{s <= t}(q_t . k_s
// / sqrt(d)) (0 for s > t), out[b, t, h] = sum_s P[b, h, t, s] v[b, s, h]
// and lse[b, h, t] = log sum_{s <= t} exp(q_t . k_s / sqrt(d)). P is never
// stored whole: the kernels work on tiles of query rows, so memory is
// O(batch x heads x seq), not O(seq^2) per head.
template <typename T>
void causalAttention(const T *q, const T *k, const T *v, T *out, Acc<T> *lse, int64_t batch,
                     int64_t seq, int64_t channels, int64_t heads);

// The gradients of causalAttention for q, k and v; P is recomputed from the
// scores and the saved lse.
template <typename T>
void causalAttentionGrad(const T *q, const T *k, const T *v, const Acc<T> *lse, const T *g, T *dq,
                         T *dk, T *dv, int64_t batch, int64_t seq, int64_t channels, int64_t heads);

// out[i] = in[i] * keep(i) / (1 - rate), keep(i) = hash(seed, stream, layer,
// step, global index of i) >= rate; the global index of local element i
// comes from row-major shapes and offsets per dimension. `layer` numbers the
// layer inside repeats (-1 outside any); step 0 (evaluation) is the identity.
template <typename T>
void dropout(const T *in, T *out, int rank, const int64_t *localShape, const int64_t *globalShape,
             const int64_t *offsets, double rate, uint64_t seed, int64_t stream, int64_t layer,
             const Acc<T> *step);

/// The hash stream of a dropout mask: "dropout<stream>@" outside repeats,
/// "dropout<stream>.<layer>@" inside; the step's digits follow.
std::string dropoutStream(int64_t stream, int64_t layer);

} // namespace dtlrt

#endif // DTLRT_KERNELS_H
