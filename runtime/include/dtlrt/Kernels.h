//===- Kernels.h - the CPU kernels generated code calls ---------*- C++ -*-===//
//
// One small function per kernel, the math it computes in a comment above
// it (llm.c style). Elementwise loops are emitted inline by codegen; these
// are the ones worth a library: GEMM and the row-wise and optimizer kernels.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_KERNELS_H
#define DTLRT_KERNELS_H

#include <cstdint>

namespace dtlrt {

// c[m, n] = op(a) @ op(b), op(x) = x or x^T; a is [m, k] (or [k, m]).
template <typename T>
void matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const T *a,
            const T *b, T *c);

// out[i] = in[sum_d index_d(i) * inStrides[d]] over out's `rank` dims; a
// stride of 0 repeats the input along that dimension (numpy broadcasting).
template <typename T>
void broadcast(const T *in, T *out, const int64_t *outShape, const int64_t *inStrides,
               int rank);

// out = in summed over the dimensions d with reduced[d] (accumulated in
// double); out holds the other dimensions in order.
template <typename T>
void reduceSum(const T *in, T *out, const int64_t *inShape, const bool *reduced, int rank);

// out[b] = logsumexp(logits[b, :]) - logits[b, labels[b]]; 0 when labels[b] < 0.
template <typename T>
void crossEntropy(const T *logits, const int32_t *labels, T *out, int64_t batch,
                  int64_t classes);

// out[b, c] = grad[b] * (softmax(logits[b, :])[c] - (c == labels[b])).
template <typename T>
void crossEntropyGrad(const T *logits, const int32_t *labels, const T *grad, T *out,
                      int64_t batch, int64_t classes);

// out[b] = argmax(logits[b, :]) == labels[b].
template <typename T>
void correct(const T *logits, const int32_t *labels, T *out, int64_t batch, int64_t classes);

// torch.optim.AdamW, t = step (1-based).
template <typename T>
void adamwUpdate(const T *param, const T *grad, const T *m, const T *v, T lr, T step,
                 double beta1, double beta2, double eps, double weightDecay, T *newParam,
                 T *newM, T *newV, int64_t n);

// torch.optim.SGD with momentum (no dampening) and weight decay.
template <typename T>
void sgdUpdate(const T *param, const T *grad, const T *buf, T lr, double momentum,
               double weightDecay, T *newParam, T *newBuf, int64_t n);

} // namespace dtlrt

#endif // DTLRT_KERNELS_H
