//===- Blas.h - one GEMM entry for float and double -------------*- C++ -*-===//
//
// Internal to libdtlrt: the kernels are templates over the element type and
// call BLAS through these overloads.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_LIB_BLAS_H
#define DTLRT_LIB_BLAS_H

#include <cblas.h>

#include <cstdint>

namespace dtlrt {

/// c = alpha op(a) op(b) + beta c on row-major matrices with row strides.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                 int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

} // namespace dtlrt

#endif // DTLRT_LIB_BLAS_H
