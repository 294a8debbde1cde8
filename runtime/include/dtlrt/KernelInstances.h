//===- KernelInstances.h - the kernel templates each library instantiates -*- C++ -*-===//
//
// The explicit instantiations of the kernels' templates, one list shared by
// the CPU kernels (Kernels.cpp, TransformerKernels.cpp, in namespace dtlrt)
// and the CUDA ones (Kernels.cu, in dtlrt::cuda), so a call the step
// printer emits links against either library. T is how values are stored,
// U what a kernel that may write either precision writes.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_KERNELINSTANCES_H
#define DTLRT_KERNELINSTANCES_H

/// GEMMs and sums (T operands, U results).
#define DTLRT_INSTANTIATE_GEMM(T, U)                                                               \
  template void matmul<T, U>(bool, bool, int64_t, int64_t, int64_t, const T *, const T *,          \
                             const T *, U *);                                                      \
  template void reduceSum<T, U>(const T *, U *, const int64_t *, const bool *, int);

/// Layout and classifier kernels.
#define DTLRT_INSTANTIATE_CLASSIFIER(T)                                                            \
  template void accumulate<T>(const T *, T *, int64_t, bool);                                      \
  template void broadcast<T>(const T *, T *, const int64_t *, const int64_t *, int);               \
  template void place<T>(const T *, T *, const int64_t *, const int64_t *, int);                   \
  template void crossEntropy<T>(const T *, const int32_t *, Acc<T> *, int64_t, int64_t);           \
  template void crossEntropyGrad<T>(const T *, const int32_t *, const Acc<T> *, T *, int64_t,      \
                                    int64_t, const Acc<T> *, int64_t, int64_t);                    \
  template void crossEntropyPartial<T>(const T *, const int32_t *, Acc<T> *, int64_t, int64_t,     \
                                       int64_t, int64_t);                                          \
  template void correct<T>(const T *, const int32_t *, Acc<T> *, int64_t, int64_t);                \
  template void argmaxPartial<T>(const T *, Acc<T> *, int64_t, int64_t, int64_t);

/// The transformer's parameter gradients (T values, U gradients).
#define DTLRT_INSTANTIATE_TRANSFORMER_GRADS(T, U)                                                  \
  template void layerNormGradParams<T, U>(const T *, const Acc<T> *, const Acc<T> *, const T *,    \
                                          U *, U *, int64_t, int64_t);                             \
  template void embeddingGrad<T, U>(const int32_t *, const T *, U *, int64_t, int64_t, int64_t,    \
                                    int64_t, int64_t);

/// The transformer's row, attention and dropout kernels.
#define DTLRT_INSTANTIATE_TRANSFORMER(T)                                                           \
  template void softmax<T>(const T *, T *, int64_t, int64_t);                                      \
  template void softmaxGrad<T>(const T *, const T *, T *, int64_t, int64_t);                       \
  template void layerNorm<T>(const T *, const T *, const T *, double, T *, Acc<T> *, Acc<T> *,     \
                             int64_t, int64_t);                                                    \
  template void layerNormGradInput<T>(const T *, const T *, const Acc<T> *, const Acc<T> *,        \
                                      const T *, T *, int64_t, int64_t);                           \
  template void embedding<T>(const T *, const int32_t *, T *, int64_t, int64_t, int64_t, int64_t,  \
                             int64_t);                                                             \
  template void causalAttention<T>(const T *, const T *, const T *, T *, Acc<T> *, int64_t,        \
                                   int64_t, int64_t, int64_t);                                     \
  template void causalAttentionGrad<T>(const T *, const T *, const T *, const Acc<T> *, const T *, \
                                       T *, T *, T *, int64_t, int64_t, int64_t, int64_t);         \
  template void dropout<T>(const T *, T *, int, const int64_t *, const int64_t *, const int64_t *, \
                           double, uint64_t, int64_t, int64_t, const Acc<T> *);

/// Statistics, stored as f32 whatever the values are (f64 in checks).
#define DTLRT_INSTANTIATE_STATISTICS(T)                                                            \
  template void crossEntropyCombine<T>(const T *, const int32_t *, T *, T *, int64_t, int64_t);    \
  template void correctCombine<T>(const T *, const int32_t *, T *, int64_t, int64_t);

/// What a storage type gets: f32 and bf16 on both targets, f64 on the CPU
/// (gradient checks).
#define DTLRT_INSTANTIATE_STORAGE(T)                                                               \
  DTLRT_INSTANTIATE_CLASSIFIER(T)                                                                  \
  DTLRT_INSTANTIATE_TRANSFORMER(T)                                                                 \
  DTLRT_INSTANTIATE_GEMM(T, T)                                                                     \
  DTLRT_INSTANTIATE_TRANSFORMER_GRADS(T, T)

#endif // DTLRT_KERNELINSTANCES_H
