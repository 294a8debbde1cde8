//===- Kernels.cpp - GEMM, row-wise and optimizer kernels for the CPU -----===//

#include "dtlrt/Kernels.h"
#include "dtlrt/Data.h"
#include "dtlrt/KernelInstances.h"

#include "Blas.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace dtlrt {

template <typename T, typename U>
void matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T *a, const T *b,
            const T *bias, U *c) {
  if constexpr (std::is_same_v<T, bf16>) {
    bf16Matmul(ta, tb, m, n, k, a, b, bias, c);
  } else {
    static_assert(std::is_same_v<T, U>, "f32 and f64 GEMMs write their own type");
    if (bias) {
#pragma omp parallel for if (m * n > 65536)
      for (int64_t i = 0; i < m; ++i)
        std::copy(bias, bias + n, c + i * n);
    }
    gemm(ta, tb, m, n, k, T(1), a, ta ? m : k, b, tb ? k : n, T(bias ? 1 : 0), c, n);
  }
}

/// A copy between a contiguous tensor of `shape` and strided positions of
/// another (`strides` per dimension): the contiguous side is read
/// (`Scatter`: broadcast's inverse, place) or written (a gather, broadcast).
template <bool Scatter, typename T>
void stridedCopy(const T *in, T *out, const int64_t *shape, const int64_t *strides, int rank) {
  if (rank == 0) {
    out[0] = in[0];
    return;
  }
  int64_t inner = shape[rank - 1], innerStride = strides[rank - 1], rows = 1;
  for (int d = 0; d < rank - 1; ++d)
    rows *= shape[d];
#pragma omp parallel for if (rows * inner > 65536)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t base = 0, rest = row;
    for (int d = rank - 2; d >= 0; --d) {
      base += (rest % shape[d]) * strides[d];
      rest /= shape[d];
    }
    for (int64_t j = 0; j < inner; ++j)
      if constexpr (Scatter)
        out[base + j * innerStride] = in[row * inner + j];
      else
        out[row * inner + j] = in[base + j * innerStride];
  }
}

template <typename T>
void broadcast(const T *in, T *out, const int64_t *outShape, const int64_t *inStrides, int rank) {
  stridedCopy<false>(in, out, outShape, inStrides, rank);
}

template <typename T>
void place(const T *in, T *out, const int64_t *inShape, const int64_t *outStrides, int rank) {
  stridedCopy<true>(in, out, inShape, outStrides, rank);
}

/// Element offsets, in a row-major tensor of `shape`, of every index over the
/// dimensions where `select[d] == pick`, in row-major order of those dims.
static std::vector<int64_t> offsetsOver(const int64_t *shape, const bool *select, bool pick,
                                        int rank) {
  std::vector<int64_t> offsets{0};
  int64_t stride = 1;
  std::vector<int64_t> strides(rank);
  for (int d = rank - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= shape[d];
  }
  for (int d = 0; d < rank; ++d) {
    if (select[d] != pick)
      continue;
    std::vector<int64_t> next;
    next.reserve(offsets.size() * shape[d]);
    for (int64_t base : offsets)
      for (int64_t i = 0; i < shape[d]; ++i)
        next.push_back(base + i * strides[d]);
    offsets.swap(next);
  }
  return offsets;
}

template <typename T, typename U>
void reduceSum(const T *in, U *out, const int64_t *inShape, const bool *reduced, int rank) {
  if (std::all_of(reduced, reduced + rank, [](bool r) { return r; })) {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d)
      n *= inShape[d];
    double acc = 0;
#pragma omp parallel for reduction(+ : acc) if (n > 65536)
    for (int64_t i = 0; i < n; ++i)
      acc += in[i];
    out[0] = U(acc);
    return;
  }
  // Bias gradients: a sum over leading dims into the trailing ones, column
  // blocks in parallel, each a vectorised sweep down the rows.
  int lead = 0;
  while (lead < rank && reduced[lead])
    ++lead;
  if (lead > 0 && std::none_of(reduced + lead, reduced + rank, [](bool r) { return r; })) {
    int64_t rows = 1, cols = 1;
    for (int d = 0; d < lead; ++d)
      rows *= inShape[d];
    for (int d = lead; d < rank; ++d)
      cols *= inShape[d];
    constexpr int64_t kBlock = 256;
#pragma omp parallel for if (rows * cols > 65536)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      int64_t width = std::min(kBlock, cols - c0);
      double acc[kBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const T *row = in + r * cols + c0;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j)
          acc[j] += row[j];
      }
      for (int64_t j = 0; j < width; ++j)
        out[c0 + j] = U(acc[j]);
    }
    return;
  }
  std::vector<int64_t> kept = offsetsOver(inShape, reduced, false, rank);
  std::vector<int64_t> summed = offsetsOver(inShape, reduced, true, rank);
  int64_t nKept = kept.size(), nSummed = summed.size();
#pragma omp parallel for if (nKept * nSummed > 65536)
  for (int64_t o = 0; o < nKept; ++o) {
    double acc = 0;
    const T *base = in + kept[o];
    for (int64_t k = 0; k < nSummed; ++k)
      acc += base[summed[k]];
    out[o] = U(acc);
  }
}

/// log(sum(exp(row))) computed stably, summed in double.
template <typename T> static double logSumExp(const T *row, int64_t n) {
  const Acc<T> max = *std::max_element(row, row + n);
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i)
    sum += fastExp(Acc<T>(row[i]) - max);
  return double(max) + std::log(sum);
}

/// Labels index the logits: one past the classes would read another row.
static void checkLabels(const int32_t *labels, int64_t batch, int64_t classes) {
  for (int64_t b = 0; b < batch; ++b)
    if (labels[b] >= classes)
      throw DataError("a label is " + std::to_string(labels[b]) + ", but the classifier has " +
                      std::to_string(classes) + " classes (labels must be 0.." +
                      std::to_string(classes - 1) + ")");
}

template <typename T>
void crossEntropy(const T *logits, const int32_t *labels, Acc<T> *out, int64_t batch,
                  int64_t classes) {
  using A = Acc<T>;
  checkLabels(labels, batch, classes);
#pragma omp parallel for if (batch * classes > 65536)
  for (int64_t b = 0; b < batch; ++b) {
    const T *row = logits + b * classes;
    out[b] = labels[b] < 0 ? A(0) : A(logSumExp(row, classes) - A(row[labels[b]]));
  }
}

template <typename T>
void crossEntropyGrad(const T *logits, const int32_t *labels, const Acc<T> *grad, T *out,
                      int64_t batch, int64_t classes, const Acc<T> *lse, int64_t first,
                      int64_t vocab) {
  using A = Acc<T>;
  checkLabels(labels, batch, vocab ? vocab : classes);
#pragma omp parallel for if (batch * classes > 65536)
  for (int64_t b = 0; b < batch; ++b) {
    const T *row = logits + b * classes;
    T *o = out + b * classes;
    if (labels[b] < 0) {
      std::fill(o, o + classes, T(0));
      continue;
    }
    const A rowLse = lse ? lse[b] : A(logSumExp(row, classes)), g = grad[b];
#pragma omp simd
    for (int64_t c = 0; c < classes; ++c)
      o[c] = g * fastExp(A(row[c]) - rowLse);
    int64_t label = labels[b] - first;
    if (label >= 0 && label < classes)
      o[label] = A(o[label]) - g;
  }
}

template <typename T>
void crossEntropyPartial(const T *logits, const int32_t *labels, Acc<T> *parts, int64_t batch,
                         int64_t classes, int64_t first, int64_t vocab) {
  using A = Acc<T>;
  checkLabels(labels, batch, vocab);
#pragma omp parallel for if (batch * classes > 65536)
  for (int64_t b = 0; b < batch; ++b) {
    const T *row = logits + b * classes;
    int64_t label = labels[b] - first;
    parts[b] = A(logSumExp(row, classes));
    parts[batch + b] = label >= 0 && label < classes ? A(row[label]) : A(0);
  }
}

template <typename T>
void crossEntropyCombine(const T *parts, const int32_t *labels, T *loss, T *lse, int64_t batch,
                         int64_t ranks) {
  for (int64_t b = 0; b < batch; ++b) {
    double max = -INFINITY, sum = 0, picked = 0;
    for (int64_t r = 0; r < ranks; ++r)
      max = std::max(max, double(parts[2 * r * batch + b]));
    for (int64_t r = 0; r < ranks; ++r) {
      sum += std::exp(double(parts[2 * r * batch + b]) - max);
      picked += double(parts[(2 * r + 1) * batch + b]);
    }
    double rowLse = max + std::log(sum);
    lse[b] = T(rowLse);
    loss[b] = labels[b] < 0 ? T(0) : T(rowLse - picked);
  }
}

template <typename T>
void correct(const T *logits, const int32_t *labels, Acc<T> *out, int64_t batch, int64_t classes) {
  checkLabels(labels, batch, classes);
  for (int64_t b = 0; b < batch; ++b) {
    const T *row = logits + b * classes;
    out[b] = Acc<T>(std::max_element(row, row + classes) - row == labels[b]);
  }
}

template <typename T>
void argmaxPartial(const T *logits, Acc<T> *parts, int64_t batch, int64_t classes, int64_t first) {
  for (int64_t b = 0; b < batch; ++b) {
    const T *row = logits + b * classes;
    int64_t best = std::max_element(row, row + classes) - row;
    parts[b] = Acc<T>(row[best]);
    parts[batch + b] = Acc<T>(first + best);
  }
}

template <typename T>
void correctCombine(const T *parts, const int32_t *labels, T *out, int64_t batch, int64_t ranks) {
  for (int64_t b = 0; b < batch; ++b) {
    int64_t best = 0;
    for (int64_t r = 1; r < ranks; ++r)
      if (parts[2 * r * batch + b] > parts[2 * best * batch + b])
        best = r;
    out[b] = T(int64_t(parts[(2 * best + 1) * batch + b]) == labels[b]);
  }
}

/// A skipped step (a NaN gradient scale) leaves params and state as they
/// are; when they are updated in place there is nothing to write.
template <typename T> static void keepUnchanged(const T *from, T *to, int64_t n) {
  if (from != to)
    std::copy(from, from + n, to);
}

template <typename T>
void adamwUpdate(const T *param, const T *grad, const T *m, const T *v, const T *lrAt,
                 const T *stepAt, const T *gradScaleAt, double beta1, double beta2, double eps,
                 double weightDecay, T *newParam, T *newM, T *newV, int64_t n) {
  const T lr = *lrAt, step = *stepAt, scale = *gradScaleAt;
  if (!std::isfinite(scale)) {
    keepUnchanged(param, newParam, n);
    keepUnchanged(m, newM, n);
    keepUnchanged(v, newV, n);
    return;
  }
  const T b1 = T(beta1), b2 = T(beta2);
  const T correction1 = T(1 - std::pow(beta1, double(step)));
  const T correction2 = T(1 - std::pow(beta2, double(step)));
  const T decay = T(1 - double(lr) * weightDecay);
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    T g = scale * grad[i];
    T mi = b1 * m[i] + (1 - b1) * g;
    T vi = b2 * v[i] + (1 - b2) * g * g;
    newM[i] = mi;
    newV[i] = vi;
    newParam[i] =
        param[i] * decay - lr * (mi / correction1) / (std::sqrt(vi / correction2) + T(eps));
  }
}

template <typename T>
void sgdUpdate(const T *param, const T *grad, const T *buf, const T *lrAt, const T *gradScaleAt,
               double momentum, double weightDecay, T *newParam, T *newBuf, int64_t n) {
  const T lr = *lrAt, scale = *gradScaleAt, mu = T(momentum), wd = T(weightDecay);
  if (!std::isfinite(scale)) {
    keepUnchanged(param, newParam, n);
    keepUnchanged(buf, newBuf, n);
    return;
  }
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    T d = scale * grad[i] + wd * param[i];
    T b = momentum != 0 ? mu * buf[i] + d : d;
    newBuf[i] = b;
    newParam[i] = param[i] - lr * b;
  }
}

template <typename T> void accumulate(const T *in, T *out, int64_t count, bool first) {
  if (first) {
    std::memcpy(out, in, count * sizeof(T));
    return;
  }
#pragma omp parallel for simd if (count > 65536)
  for (int64_t i = 0; i < count; ++i)
    out[i] = Acc<T>(out[i]) + Acc<T>(in[i]);
}

DTLRT_INSTANTIATE_GEMM(float, float)
DTLRT_INSTANTIATE_GEMM(double, double)
DTLRT_INSTANTIATE_GEMM(bf16, bf16)
DTLRT_INSTANTIATE_GEMM(bf16, float)
DTLRT_INSTANTIATE_CLASSIFIER(float)
DTLRT_INSTANTIATE_CLASSIFIER(double)
DTLRT_INSTANTIATE_CLASSIFIER(bf16)
DTLRT_INSTANTIATE_STATISTICS(float)
DTLRT_INSTANTIATE_STATISTICS(double)
// The optimizers update f32 (or f64) masters.
#define DTLRT_INSTANTIATE_OPTIMIZERS(T)                                                            \
  template void adamwUpdate<T>(const T *, const T *, const T *, const T *, const T *, const T *,   \
                               const T *, double, double, double, double, T *, T *, T *, int64_t); \
  template void sgdUpdate<T>(const T *, const T *, const T *, const T *, const T *, double,        \
                             double, T *, T *, int64_t);
DTLRT_INSTANTIATE_OPTIMIZERS(float)
DTLRT_INSTANTIATE_OPTIMIZERS(double)
// Transposed token ids and labels (gradient accumulation's micro-batches).
template void broadcast<int32_t>(const int32_t *, int32_t *, const int64_t *, const int64_t *, int);

} // namespace dtlrt
