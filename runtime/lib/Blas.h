//===- Blas.h - one GEMM entry for float and double -------------*- C++ -*-===//
//
// Internal to libdtlrt: the kernels are templates over the element type and
// call BLAS through these overloads.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_LIB_BLAS_H
#define DTLRT_LIB_BLAS_H

#include "dtlrt/Bf16.h"

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

/// c = op(a) op(b) (+ bias rows) on bf16 operands, accumulated in f32 and
/// written in c's type (Bf16Gemm.cpp: oneDNN, or f32 BLAS where oneDNN has
/// no bf16 GEMM for the CPU).
void bf16Matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16 *a, const bf16 *b,
                const bf16 *bias, bf16 *c);
void bf16Matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16 *a, const bf16 *b,
                const bf16 *bias, float *c);

} // namespace dtlrt

#endif // DTLRT_LIB_BLAS_H
