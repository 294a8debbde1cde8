//===- Kernels.cu - GEMMs, row kernels, attention and optimizers on CUDA --===//
//
// The GPU twins of Kernels.cpp and TransformerKernels.cpp, with the same
// math (stated in dtlrt/Kernels.h). Row kernels give each row one block and
// reduce in registers and warp shuffles; reductions are deterministic (no
// float atomics) except embeddingGrad's scatter-add. GEMMs go through
// cuBLASLt with the bias fused into the epilogue; attention runs as
// strided-batched cuBLAS GEMMs around a fused causal softmax, over heads
// laid out [B, H, T, d] in scratch, a bounded chunk of heads at a time so
// the [T, T] scores never exist for all heads at once. Every kernel is a
// template over the stored type (f32, or bf16 with precision = bf16) and
// computes in f32; the instantiations at the end are the ones the CPU
// kernels have (Kernels.cpp), so a program prints the same calls for both.
//
//===----------------------------------------------------------------------===//

#include "Gpu.h"
#include "dtlrt/Hash.h"
#include "dtlrt/KernelInstances.h"
#include "dtlrt/Kernels.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <type_traits>

namespace dtlrt::cuda {

namespace {

constexpr int kMaxRank = 8;

/// A small array passed to kernels by value.
struct Dims {
  int64_t d[kMaxRank];
  int rank;
};

Dims dimsOf(const std::vector<int64_t> &v) {
  if (v.size() > size_t(kMaxRank))
    Gpu::get().fail("internal error: a tensor of rank " + std::to_string(v.size()) +
                    " (the CUDA kernels take up to " + std::to_string(kMaxRank) + ")");
  Dims out{};
  out.rank = int(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out.d[i] = v[i];
  return out;
}

/// Records the first failure of a step (a bad label or token id).
__device__ void recordFailure(int64_t *failure, int64_t code, int64_t value) {
  if (atomicCAS(reinterpret_cast<unsigned long long *>(failure), 0ull,
                static_cast<unsigned long long>(code)) == 0ull)
    failure[1] = value;
}

__device__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum (or max) over the block; every thread gets the result. Blocks are a
/// whole number of warps.
template <bool IsMax> __device__ float blockReduce(float v) {
  __shared__ float shared[32];
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  v = IsMax ? warpMax(v) : warpSum(v);
  __syncthreads(); // the previous call's readers are done with `shared`
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < warps ? shared[threadIdx.x] : (IsMax ? -INFINITY : 0.f);
  if (warp == 0)
    v = IsMax ? warpMax(v) : warpSum(v);
  if (threadIdx.x == 0)
    shared[0] = v;
  __syncthreads();
  return shared[0];
}
__device__ float blockSum(float v) { return blockReduce<false>(v); }
__device__ float blockMax(float v) { return blockReduce<true>(v); }

constexpr int kRowBlock = 256;

template <typename T> constexpr cudaDataType_t cudaType() {
  return std::is_same_v<T, bf16> ? CUDA_R_16BF : CUDA_R_32F;
}

/// f32 operands multiply as GemmMath says; bf16 ones are bf16 products with
/// f32 accumulation whatever it says.
cublasComputeType_t computeType(cudaDataType_t operands) {
  return operands == CUDA_R_32F && Gpu::get().math() == GemmMath::BF16
             ? CUBLAS_COMPUTE_32F_FAST_16BF
             : CUBLAS_COMPUTE_32F;
}

/// Row-major c[batch][m, n] = alpha op(a) op(b) + beta c through cuBLAS's
/// column-major API (which computes c^T = op(b)^T op(a)^T).
template <typename T, typename U>
void gemmBatched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const T *a,
                 int64_t lda, int64_t strideA, const T *b, int64_t ldb, int64_t strideB, float beta,
                 U *c, int64_t ldc, int64_t strideC, int64_t batch) {
  Gpu &gpu = Gpu::get();
  gpu.checkBlas(cublasGemmStridedBatchedEx(
                    gpu.blas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                    int(n), int(m), int(k), &alpha, b, cudaType<T>(), int(ldb), strideB, a,
                    cudaType<T>(), int(lda), strideA, &beta, c, cudaType<U>(), int(ldc), strideC,
                    int(batch), computeType(cudaType<T>()), CUBLAS_GEMM_DEFAULT),
                "cublasGemmStridedBatchedEx");
}

template <typename T, typename U>
__global__ void addBiasKernel(U *c, const T *bias, int64_t rows, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * n;
       i += int64_t(gridDim.x) * blockDim.x)
    c[i] = float(c[i]) + float(bias[i % n]);
}

/// A cuBLASLt matmul for one shape and pair of types, made once:
/// descriptors and the heuristic's algorithm.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo;
  bool found = false;
};

LtPlan makePlan(bool ta, bool tb, int64_t m, int64_t n, int64_t k, bool bias,
                cudaDataType_t operands, cudaDataType_t stored) {
  Gpu &gpu = Gpu::get();
  LtPlan p;
  gpu.checkBlas(cublasLtMatmulDescCreate(&p.desc, computeType(operands), CUDA_R_32F),
                "matmul desc");
  // Column-major view: Lt's A is our b, its B our a (see gemmBatched).
  cublasOperation_t opA = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opB = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  gpu.checkBlas(
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA),
      "matmul transa");
  gpu.checkBlas(
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB),
      "matmul transb");
  cublasLtEpilogue_t epilogue = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  gpu.checkBlas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                               sizeof epilogue),
                "matmul epilogue");
  if (bias) // the bias is stored like the operands (a bf16 working copy)
    gpu.checkBlas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                 &operands, sizeof operands),
                  "matmul bias type");
  gpu.checkBlas(cublasLtMatrixLayoutCreate(&p.a, operands, tb ? k : n, tb ? n : k, tb ? k : n),
                "layout a");
  gpu.checkBlas(cublasLtMatrixLayoutCreate(&p.b, operands, ta ? m : k, ta ? k : m, ta ? m : k),
                "layout b");
  gpu.checkBlas(cublasLtMatrixLayoutCreate(&p.c, stored, n, m, n), "layout c");
  cublasLtMatmulPreference_t preference;
  gpu.checkBlas(cublasLtMatmulPreferenceCreate(&preference), "matmul preference");
  size_t workspace = Gpu::kWorkspaceBytes;
  gpu.checkBlas(cublasLtMatmulPreferenceSetAttribute(preference,
                                                     CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &workspace, sizeof workspace),
                "matmul workspace");
  // Arena buffers and layer views are aligned to 16 bytes at least, not
  // the 256 the heuristic assumes by default.
  uint32_t alignment = 16;
  for (auto attribute :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    gpu.checkBlas(
        cublasLtMatmulPreferenceSetAttribute(preference, attribute, &alignment, sizeof alignment),
        "matmul alignment");
  cublasLtMatmulHeuristicResult_t result;
  int count = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(gpu.lt(), p.desc, p.a, p.b, p.c, p.c,
                                                         preference, 1, &result, &count);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status == CUBLAS_STATUS_SUCCESS && count > 0) {
    p.algo = result.algo;
    p.found = true;
  }
  return p;
}

} // namespace

template <typename T, typename U>
void matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T *a, const T *b,
            const T *bias, U *c) {
  Gpu &gpu = Gpu::get();
  static std::map<std::tuple<bool, bool, int64_t, int64_t, int64_t, bool, GemmMath>, LtPlan> plans;
  auto key = std::make_tuple(ta, tb, m, n, k, bias != nullptr, gpu.math());
  auto it = plans.find(key);
  if (it == plans.end())
    it =
        plans.emplace(key, makePlan(ta, tb, m, n, k, bias != nullptr, cudaType<T>(), cudaType<U>()))
            .first;
  LtPlan &p = it->second;
  const float one = 1, zero = 0;
  if (p.found) {
    if (bias)
      gpu.checkBlas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof bias),
                    "matmul bias");
    gpu.checkBlas(cublasLtMatmul(gpu.lt(), p.desc, &one, b, p.a, a, p.b, &zero, c, p.c, c, p.c,
                                 &p.algo, gpu.workspace(), Gpu::kWorkspaceBytes, stream()),
                  "cublasLtMatmul");
    return;
  }
  // No cuBLASLt algorithm for this shape: plain cuBLAS, then the bias.
  gemmBatched(ta, tb, m, n, k, 1, a, ta ? m : k, 0, b, tb ? k : n, 0, 0, c, n, 0, 1);
  if (bias) {
    addBiasKernel<<<blocksFor(m * n), kBlock, 0, stream()>>>(c, bias, m, n);
    checkLaunch("addBias");
  }
}

// --- Layout ---------------------------------------------------------------

namespace {

/// Between a contiguous tensor of `shape` and strided positions of another:
/// a gather (broadcast, transpose) or, with `Scatter`, its inverse (place).
template <typename T, bool Scatter>
__global__ void stridedCopyKernel(const T *in, T *out, int64_t total, Dims shape, Dims strides) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, offset = 0;
    for (int d = shape.rank - 1; d >= 0; --d) {
      offset += (rest % shape.d[d]) * strides.d[d];
      rest /= shape.d[d];
    }
    if constexpr (Scatter)
      out[offset] = in[i];
    else
      out[i] = in[offset];
  }
}

/// Stage one of a full sum: one partial per block.
template <typename T> __global__ void partialSumKernel(const T *in, float *partials, int64_t n) {
  float acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    acc += float(in[i]);
  acc = blockSum(acc);
  if (threadIdx.x == 0)
    partials[blockIdx.x] = acc;
}

template <typename U> __global__ void finalSumKernel(const float *partials, U *out, int count) {
  float acc = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x)
    acc += partials[i];
  acc = blockSum(acc);
  if (threadIdx.x == 0)
    out[0] = acc;
}

/// Stage one of column sums of a [rows, n] matrix: each (column, chunk of
/// rows) thread sums its chunk into partials[chunk, column].
template <typename T>
__global__ void columnPartialKernel(const T *in, float *partials, int64_t rows, int64_t n) {
  int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= n)
    return;
  int64_t chunks = gridDim.y, per = (rows + chunks - 1) / chunks;
  int64_t begin = blockIdx.y * per, end = min(rows, begin + per);
  float acc = 0;
  for (int64_t r = begin; r < end; ++r)
    acc += float(in[r * n + col]);
  partials[blockIdx.y * n + col] = acc;
}

template <typename U>
__global__ void columnFinalKernel(const float *partials, U *out, int64_t chunks, int64_t n) {
  int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= n)
    return;
  float acc = 0;
  for (int64_t c = 0; c < chunks; ++c)
    acc += partials[c * n + col];
  out[col] = acc;
}

/// The general case: one thread per kept element walks the summed ones.
template <typename T, typename U>
__global__ void reduceKernel(const T *in, U *out, int64_t kept, Dims keptShape, Dims keptStrides,
                             int64_t summed, Dims sumShape, Dims sumStrides) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < kept;
       o += int64_t(gridDim.x) * blockDim.x) {
    int64_t base = 0, rest = o;
    for (int d = keptShape.rank - 1; d >= 0; --d) {
      base += (rest % keptShape.d[d]) * keptStrides.d[d];
      rest /= keptShape.d[d];
    }
    float acc = 0;
    for (int64_t s = 0; s < summed; ++s) {
      int64_t offset = base, r = s;
      for (int d = sumShape.rank - 1; d >= 0; --d) {
        offset += (r % sumShape.d[d]) * sumStrides.d[d];
        r /= sumShape.d[d];
      }
      acc += float(in[offset]);
    }
    out[o] = acc;
  }
}

__global__ void fillKernel(float *out, float value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = value;
}

template <typename T> __global__ void accumulateKernel(const T *in, T *out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float(out[i]) + float(in[i]);
}

template <typename T, typename U> __global__ void convertKernel(const T *in, U *out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float(in[i]);
}

/// Column sums of a [rows, n] matrix in two deterministic stages.
template <typename T, typename U> void columnSums(const T *in, U *out, int64_t rows, int64_t n) {
  int64_t chunks = std::min<int64_t>(rows, 128);
  float *partials =
      static_cast<float *>(Gpu::get().scratch(Scratch::Partials, chunks * n * sizeof(float)));
  dim3 grid(unsigned((n + kBlock - 1) / kBlock), unsigned(chunks));
  columnPartialKernel<<<grid, kBlock, 0, stream()>>>(in, partials, rows, n);
  columnFinalKernel<<<unsigned((n + kBlock - 1) / kBlock), kBlock, 0, stream()>>>(partials, out,
                                                                                  chunks, n);
  checkLaunch("columnSums");
}

} // namespace

template <typename T>
void broadcast(const T *in, T *out, const int64_t *outShapeAt, const int64_t *inStridesAt,
               int rankOut) {
  std::vector<int64_t> outShape(outShapeAt, outShapeAt + rankOut),
      inStrides(inStridesAt, inStridesAt + rankOut);
  int64_t total = 1;
  for (int64_t d : outShape)
    total *= d;
  stridedCopyKernel<T, false><<<blocksFor(total), kBlock, 0, stream()>>>(
      in, out, total, dimsOf(outShape), dimsOf(inStrides));
  checkLaunch("broadcast");
}

template <typename T>
void place(const T *in, T *out, const int64_t *inShapeAt, const int64_t *outStridesAt, int rankIn) {
  std::vector<int64_t> inShape(inShapeAt, inShapeAt + rankIn),
      outStrides(outStridesAt, outStridesAt + rankIn);
  int64_t total = 1;
  for (int64_t d : inShape)
    total *= d;
  stridedCopyKernel<T, true><<<blocksFor(total), kBlock, 0, stream()>>>(
      in, out, total, dimsOf(inShape), dimsOf(outStrides));
  checkLaunch("place");
}

template <typename T, typename U>
void reduceSum(const T *in, U *out, const int64_t *inShapeAt, const bool *reducedAt, int rankIn) {
  std::vector<int64_t> inShape(inShapeAt, inShapeAt + rankIn);
  std::vector<bool> reduced(reducedAt, reducedAt + rankIn);
  Gpu &gpu = Gpu::get();
  int rank = int(inShape.size()), lead = 0;
  while (lead < rank && reduced[lead])
    ++lead;
  bool trailingKept = true;
  for (int d = lead; d < rank; ++d)
    trailingKept &= !reduced[d];
  int64_t rows = 1, cols = 1;
  for (int d = 0; d < rank; ++d)
    (d < lead ? rows : cols) *= inShape[d];
  if (lead == rank) {
    constexpr int kPartials = 512;
    float *partials = static_cast<float *>(gpu.scratch(Scratch::Partials, kPartials * 4));
    int blocks = int(std::min<int64_t>(kPartials, (rows + kBlock - 1) / kBlock));
    blocks = blocks < 1 ? 1 : blocks;
    partialSumKernel<<<blocks, kBlock, 0, stream()>>>(in, partials, rows);
    finalSumKernel<<<1, kBlock, 0, stream()>>>(partials, out, blocks);
    checkLaunch("reduceSum");
    return;
  }
  if (lead > 0 && trailingKept) {
    if constexpr (std::is_same_v<T, float> && std::is_same_v<U, float>) {
      // Bias gradients: out = in^T ones, one GEMV (column-major: in is a
      // cols x rows matrix).
      size_t bytes = size_t(rows) * sizeof(float);
      static size_t onesFilled = 0;
      float *ones = static_cast<float *>(gpu.scratch(Scratch::Ones, bytes));
      if (bytes > onesFilled) {
        fillKernel<<<blocksFor(rows), kBlock, 0, stream()>>>(ones, 1.f, rows);
        checkLaunch("fill");
        onesFilled = bytes;
      }
      const float one = 1, zero = 0;
      gpu.checkBlas(cublasSgemv(gpu.blas(), CUBLAS_OP_N, int(cols), int(rows), &one, in, int(cols),
                                ones, 1, &zero, out, 1),
                    "cublasSgemv");
    } else {
      columnSums(in, out, rows, cols);
    }
    return;
  }
  std::vector<int64_t> strides(rank), keptShape, keptStrides, sumShape, sumStrides;
  for (int64_t d = rank - 1, s = 1; d >= 0; s *= inShape[d--])
    strides[d] = s;
  int64_t kept = 1, summed = 1;
  for (int d = 0; d < rank; ++d) {
    (reduced[d] ? sumShape : keptShape).push_back(inShape[d]);
    (reduced[d] ? sumStrides : keptStrides).push_back(strides[d]);
    (reduced[d] ? summed : kept) *= inShape[d];
  }
  reduceKernel<<<blocksFor(kept), kBlock, 0, stream()>>>(in, out, kept, dimsOf(keptShape),
                                                         dimsOf(keptStrides), summed,
                                                         dimsOf(sumShape), dimsOf(sumStrides));
  checkLaunch("reduceSum");
}

void copy(const void *in, void *out, int64_t bytes) {
  check(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, stream()), "copy");
}

template <typename T> void accumulate(const T *in, T *out, int64_t count, bool first) {
  if (first)
    return copy(in, out, count * int64_t(sizeof(T)));
  accumulateKernel<<<blocksFor(count), kBlock, 0, stream()>>>(in, out, count);
  checkLaunch("accumulate");
}

// --- Classifier -------------------------------------------------------------

namespace {

/// The maximum of x[0, n) and the sum of exp(x - maximum), over the block
/// (every thread gets both).
struct RowStats {
  float max, sumExp;
};
template <typename T> __device__ RowStats rowStats(const T *x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    m = fmaxf(m, float(x[i]));
  m = blockMax(m);
  float s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    s += __expf(float(x[i]) - m);
  return {m, blockSum(s)};
}

/// log(sum(exp(x))) of one row, computed stably.
template <typename T> __device__ float rowLogSumExp(const T *x, int64_t n) {
  RowStats r = rowStats(x, n);
  return r.max + logf(r.sumExp);
}

__device__ bool labelOk(int32_t label, int64_t classes, int64_t *failure) {
  if (label >= classes) {
    if (threadIdx.x == 0)
      recordFailure(failure, kBadLabel, label);
    return false;
  }
  return label >= 0;
}

template <typename T>
__global__ void crossEntropyKernel(const T *logits, const int32_t *labels, float *out,
                                   int64_t classes, int64_t *failure) {
  const T *x = logits + blockIdx.x * classes;
  int32_t label = labels[blockIdx.x];
  if (!labelOk(label, classes, failure)) {
    if (threadIdx.x == 0)
      out[blockIdx.x] = 0;
    return;
  }
  float lse = rowLogSumExp(x, classes);
  if (threadIdx.x == 0)
    out[blockIdx.x] = lse - float(x[label]);
}

/// Reads the whole row before writing any of it, so `out` may be `logits`
/// (the buffer plan writes the gradient over the logits). Split classes
/// (`lse` given) are [first, first + classes) of `vocab`.
template <typename T>
__global__ void crossEntropyGradKernel(const T *logits, const int32_t *labels, const float *grad,
                                       T *out, int64_t classes, const float *lse, int64_t first,
                                       int64_t vocab, int64_t *failure) {
  const T *x = logits + blockIdx.x * classes;
  T *o = out + blockIdx.x * classes;
  int32_t label = labels[blockIdx.x];
  if (!labelOk(label, vocab, failure)) {
    for (int64_t i = threadIdx.x; i < classes; i += blockDim.x)
      o[i] = 0.f;
    return;
  }
  float rowLse = lse ? lse[blockIdx.x] : rowLogSumExp(x, classes), g = grad[blockIdx.x];
  for (int64_t i = threadIdx.x; i < classes; i += blockDim.x)
    o[i] = g * __expf(float(x[i]) - rowLse) - (i + first == label ? g : 0.f);
}

template <typename T>
__global__ void crossEntropyPartialKernel(const T *logits, const int32_t *labels, float *parts,
                                          int64_t rows, int64_t classes, int64_t first,
                                          int64_t vocab, int64_t *failure) {
  const T *x = logits + blockIdx.x * classes;
  int32_t label = labels[blockIdx.x];
  labelOk(label, vocab, failure);
  float lse = rowLogSumExp(x, classes);
  if (threadIdx.x == 0) {
    int64_t local = int64_t(label) - first;
    parts[blockIdx.x] = lse;
    parts[rows + blockIdx.x] = local >= 0 && local < classes ? float(x[local]) : 0.f;
  }
}

__global__ void crossEntropyCombineKernel(const float *parts, const int32_t *labels, float *loss,
                                          float *lse, int64_t rows, int64_t ranks) {
  int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (b >= rows)
    return;
  float max = -INFINITY, sum = 0, picked = 0;
  for (int64_t r = 0; r < ranks; ++r)
    max = fmaxf(max, parts[2 * r * rows + b]);
  for (int64_t r = 0; r < ranks; ++r) {
    sum += expf(parts[2 * r * rows + b] - max);
    picked += parts[(2 * r + 1) * rows + b];
  }
  lse[b] = max + logf(sum);
  loss[b] = labels[b] < 0 ? 0.f : lse[b] - picked;
}

/// The maximum of a row and the first index where it is (as
/// std::max_element), reduced over the block; valid in thread 0.
struct RowArgmax {
  float value;
  int64_t index;
};
template <typename T> __device__ RowArgmax rowArgmax(const T *x, int64_t classes) {
  float best = -INFINITY;
  int64_t index = classes;
  for (int64_t i = threadIdx.x; i < classes; i += blockDim.x)
    if (float(x[i]) > best || index == classes)
      best = float(x[i]), index = i;
  __shared__ float values[kRowBlock];
  __shared__ int64_t indices[kRowBlock];
  values[threadIdx.x] = best;
  indices[threadIdx.x] = index;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      float v = values[threadIdx.x + half];
      int64_t j = indices[threadIdx.x + half];
      if (j < classes && (indices[threadIdx.x] == classes || v > values[threadIdx.x] ||
                          (v == values[threadIdx.x] && j < indices[threadIdx.x])))
        values[threadIdx.x] = v, indices[threadIdx.x] = j;
    }
    __syncthreads();
  }
  return {values[0], indices[0]};
}

template <typename T>
__global__ void correctKernel(const T *logits, const int32_t *labels, float *out, int64_t classes,
                              int64_t *failure) {
  const T *x = logits + blockIdx.x * classes;
  int32_t label = labels[blockIdx.x];
  labelOk(label, classes, failure);
  RowArgmax best = rowArgmax(x, classes);
  if (threadIdx.x == 0)
    out[blockIdx.x] = best.index == label ? 1.f : 0.f;
}

template <typename T>
__global__ void argmaxPartialKernel(const T *logits, float *parts, int64_t rows, int64_t classes,
                                    int64_t first) {
  RowArgmax best = rowArgmax(logits + blockIdx.x * classes, classes);
  if (threadIdx.x == 0) {
    parts[blockIdx.x] = best.value;
    parts[rows + blockIdx.x] = float(first + best.index);
  }
}

__global__ void correctCombineKernel(const float *parts, const int32_t *labels, float *out,
                                     int64_t rows, int64_t ranks) {
  int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (b >= rows)
    return;
  int64_t best = 0;
  for (int64_t r = 1; r < ranks; ++r)
    if (parts[2 * r * rows + b] > parts[2 * best * rows + b])
      best = r;
  out[b] = int64_t(parts[(2 * best + 1) * rows + b]) == labels[b] ? 1.f : 0.f;
}

} // namespace

template <typename T>
void crossEntropy(const T *logits, const int32_t *labels, Acc<T> *out, int64_t rows,
                  int64_t classes) {
  crossEntropyKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(logits, labels, out, classes,
                                                                 Gpu::get().failureWord());
  checkLaunch("crossEntropy");
}

template <typename T>
void crossEntropyGrad(const T *logits, const int32_t *labels, const Acc<T> *grad, T *out,
                      int64_t rows, int64_t classes, const Acc<T> *lse, int64_t first,
                      int64_t vocab) {
  crossEntropyGradKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(
      logits, labels, grad, out, classes, lse, first, vocab ? vocab : classes,
      Gpu::get().failureWord());
  checkLaunch("crossEntropyGrad");
}

template <typename T>
void crossEntropyPartial(const T *logits, const int32_t *labels, Acc<T> *parts, int64_t rows,
                         int64_t classes, int64_t first, int64_t vocab) {
  crossEntropyPartialKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(
      logits, labels, parts, rows, classes, first, vocab, Gpu::get().failureWord());
  checkLaunch("crossEntropyPartial");
}

template <typename T>
void crossEntropyCombine(const T *parts, const int32_t *labels, T *loss, T *lse, int64_t rows,
                         int64_t ranks) {
  crossEntropyCombineKernel<<<blocksFor(rows), kBlock, 0, stream()>>>(parts, labels, loss, lse,
                                                                      rows, ranks);
  checkLaunch("crossEntropyCombine");
}

template <typename T>
void correct(const T *logits, const int32_t *labels, Acc<T> *out, int64_t rows, int64_t classes) {
  correctKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(logits, labels, out, classes,
                                                            Gpu::get().failureWord());
  checkLaunch("correct");
}

template <typename T>
void argmaxPartial(const T *logits, Acc<T> *parts, int64_t rows, int64_t classes, int64_t first) {
  argmaxPartialKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(logits, parts, rows, classes,
                                                                  first);
  checkLaunch("argmaxPartial");
}

template <typename T>
void correctCombine(const T *parts, const int32_t *labels, T *out, int64_t rows, int64_t ranks) {
  correctCombineKernel<<<blocksFor(rows), kBlock, 0, stream()>>>(parts, labels, out, rows, ranks);
  checkLaunch("correctCombine");
}

// --- Softmax and layernorm -------------------------------------------------

namespace {

template <typename T> __global__ void softmaxKernel(const T *in, T *out, int64_t n) {
  const T *x = in + blockIdx.x * n;
  T *y = out + blockIdx.x * n;
  RowStats r = rowStats(x, n);
  float inv = 1.f / r.sumExp;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    y[i] = __expf(float(x[i]) - r.max) * inv;
}

template <typename T> __global__ void softmaxGradKernel(const T *y, const T *g, T *out, int64_t n) {
  int64_t row = blockIdx.x * n;
  float dot = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    dot += float(y[row + i]) * float(g[row + i]);
  dot = blockSum(dot);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    out[row + i] = float(y[row + i]) * (float(g[row + i]) - dot);
}

template <typename T>
__global__ void layerNormKernel(const T *x, const T *w, const T *b, float eps, T *out, float *mean,
                                float *rstd, int64_t n) {
  const T *xr = x + blockIdx.x * n;
  T *o = out + blockIdx.x * n;
  float sum = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    sum += float(xr[i]);
  float mu = blockSum(sum) / float(n), var = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    var += (float(xr[i]) - mu) * (float(xr[i]) - mu);
  float s = 1.f / sqrtf(blockSum(var) / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    o[i] = (float(xr[i]) - mu) * s * float(w[i]) + float(b[i]);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = s;
  }
}

template <typename T>
__global__ void layerNormGradInputKernel(const T *x, const T *w, const float *mean,
                                         const float *rstd, const T *g, T *out, int64_t n) {
  int64_t row = blockIdx.x * n;
  float mu = mean[blockIdx.x], s = rstd[blockIdx.x], meanD = 0, meanDX = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float d = float(g[row + i]) * float(w[i]);
    meanD += d;
    meanDX += d * (float(x[row + i]) - mu) * s;
  }
  meanD = blockSum(meanD) / float(n);
  meanDX = blockSum(meanDX) / float(n);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    out[row + i] =
        s * (float(g[row + i]) * float(w[i]) - meanD - (float(x[row + i]) - mu) * s * meanDX);
}

/// Stage one of the weight and bias gradients: each (column, chunk of rows)
/// thread sums its chunk into partials[chunk] and partials[chunks + chunk].
template <typename T>
__global__ void layerNormParamsPartialKernel(const T *x, const float *mean, const float *rstd,
                                             const T *g, float *partials, int64_t rows, int64_t n) {
  int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= n)
    return;
  int64_t chunks = gridDim.y, per = (rows + chunks - 1) / chunks;
  int64_t begin = blockIdx.y * per, end = min(rows, begin + per);
  float dw = 0, db = 0;
  for (int64_t r = begin; r < end; ++r) {
    float gi = float(g[r * n + col]);
    dw += gi * (float(x[r * n + col]) - mean[r]) * rstd[r];
    db += gi;
  }
  partials[blockIdx.y * n + col] = dw;
  partials[(chunks + blockIdx.y) * n + col] = db;
}

} // namespace

template <typename T> void softmax(const T *in, T *out, int64_t rows, int64_t n) {
  softmaxKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(in, out, n);
  checkLaunch("softmax");
}

template <typename T> void softmaxGrad(const T *y, const T *g, T *out, int64_t rows, int64_t n) {
  softmaxGradKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(y, g, out, n);
  checkLaunch("softmaxGrad");
}

template <typename T>
void layerNorm(const T *x, const T *w, const T *b, double eps, T *out, Acc<T> *mean, Acc<T> *rstd,
               int64_t rows, int64_t n) {
  layerNormKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(x, w, b, float(eps), out, mean, rstd,
                                                              n);
  checkLaunch("layerNorm");
}

template <typename T>
void layerNormGradInput(const T *x, const T *w, const Acc<T> *mean, const Acc<T> *rstd, const T *g,
                        T *out, int64_t rows, int64_t n) {
  layerNormGradInputKernel<<<unsigned(rows), kRowBlock, 0, stream()>>>(x, w, mean, rstd, g, out, n);
  checkLaunch("layerNormGradInput");
}

template <typename T, typename U>
void layerNormGradParams(const T *x, const Acc<T> *mean, const Acc<T> *rstd, const T *g, U *dw,
                         U *db, int64_t rows, int64_t n) {
  int64_t chunks = std::min<int64_t>(rows, 128);
  float *partials =
      static_cast<float *>(Gpu::get().scratch(Scratch::Partials, 2 * chunks * n * sizeof(float)));
  dim3 grid(unsigned((n + kBlock - 1) / kBlock), unsigned(chunks));
  layerNormParamsPartialKernel<<<grid, kBlock, 0, stream()>>>(x, mean, rstd, g, partials, rows, n);
  unsigned blocks = unsigned((n + kBlock - 1) / kBlock);
  columnFinalKernel<<<blocks, kBlock, 0, stream()>>>(partials, dw, chunks, n);
  columnFinalKernel<<<blocks, kBlock, 0, stream()>>>(partials + chunks * n, db, chunks, n);
  checkLaunch("layerNormGradParams");
}

// --- Embedding ----------------------------------------------------------------

namespace {

/// Rows [first, first + rows) of a `vocab`-row table; other ids give zeros.
template <typename T>
__global__ void embeddingKernel(const T *table, const int32_t *ids, T *out, int64_t count,
                                int64_t rows, int64_t channels, int64_t first, int64_t vocab,
                                int64_t *failure) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count * channels;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t id = ids[i / channels], row = id - first;
    if (id < 0 || id >= vocab)
      recordFailure(failure, kBadTokenId, id);
    out[i] = row >= 0 && row < rows ? table[row * channels + i % channels] : T(0.f);
  }
}

template <typename T>
__global__ void embeddingGradKernel(const int32_t *ids, const T *g, float *out, int64_t count,
                                    int64_t rows, int64_t channels, int64_t first, int64_t vocab,
                                    int64_t *failure) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count * channels;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t id = ids[i / channels], row = id - first;
    if (id < 0 || id >= vocab)
      recordFailure(failure, kBadTokenId, id);
    else if (row >= 0 && row < rows)
      atomicAdd(out + row * channels + i % channels, float(g[i]));
  }
}

} // namespace

template <typename T>
void embedding(const T *table, const int32_t *ids, T *out, int64_t count, int64_t rows,
               int64_t channels, int64_t first, int64_t vocab) {
  embeddingKernel<<<blocksFor(count * channels), kBlock, 0, stream()>>>(
      table, ids, out, count, rows, channels, first, vocab ? vocab : rows,
      Gpu::get().failureWord());
  checkLaunch("embedding");
}

template <typename T, typename U>
void embeddingGrad(const int32_t *ids, const T *g, U *out, int64_t count, int64_t rows,
                   int64_t channels, int64_t first, int64_t vocab) {
  // Rows are summed with f32 atomics: into the result when it is f32, else
  // into scratch, rounded once at the end.
  int64_t n = rows * channels;
  float *sums = std::is_same_v<U, float>
                    ? reinterpret_cast<float *>(out)
                    : static_cast<float *>(Gpu::get().scratch(Scratch::Sums, n * sizeof(float)));
  check(cudaMemsetAsync(sums, 0, n * sizeof(float), stream()), "cudaMemsetAsync");
  embeddingGradKernel<<<blocksFor(count * channels), kBlock, 0, stream()>>>(
      ids, g, sums, count, rows, channels, first, vocab ? vocab : rows, Gpu::get().failureWord());
  if constexpr (!std::is_same_v<U, float>)
    convertKernel<<<blocksFor(n), kBlock, 0, stream()>>>(static_cast<const float *>(sums), out, n);
  checkLaunch("embeddingGrad");
}

// --- Causal attention -------------------------------------------------------

namespace {

/// [B, T, H, d] <-> [B, H, T, d]; `toHeads` picks the direction. The
/// heads are f32 scratch; the tokens are stored as the step stores them.
template <typename In, typename Out>
__global__ void headsKernel(const In *in, Out *out, int64_t batch, int64_t seq, int64_t heads,
                            int64_t d, bool toHeads) {
  int64_t total = batch * seq * heads * d;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    // i indexes [B, T, H, d].
    int64_t e = i % d, h = i / d % heads, t = i / (d * heads) % seq, b = i / (d * heads * seq);
    int64_t j = ((b * heads + h) * seq + t) * d + e;
    if (toHeads)
      out[j] = float(in[i]);
    else
      out[i] = float(in[j]);
  }
}

/// One block per row t of one (b, h): softmax over s <= t, zeros after;
/// the row's log-sum-exp goes to lse.
__global__ void causalSoftmaxKernel(float *scores, float *lse, int64_t seq) {
  float *row = scores + blockIdx.x * seq;
  int64_t t = blockIdx.x % seq;
  RowStats r = rowStats(row, t + 1);
  float inv = 1.f / r.sumExp;
  for (int64_t s = threadIdx.x; s < seq; s += blockDim.x)
    row[s] = s <= t ? __expf(row[s] - r.max) * inv : 0.f;
  if (threadIdx.x == 0)
    lse[blockIdx.x] = r.max + logf(r.sumExp);
}

/// The probabilities again from the scores and the saved lse, in place.
__global__ void causalProbsKernel(float *scores, const float *lse, int64_t seq) {
  float *row = scores + blockIdx.x * seq;
  int64_t t = blockIdx.x % seq;
  float rowLse = lse[blockIdx.x];
  for (int64_t s = threadIdx.x; s < seq; s += blockDim.x)
    row[s] = s <= t ? __expf(row[s] - rowLse) : 0.f;
}

/// dS = P * (dP - rowsum(P * dP)) * scale, in place over dP.
__global__ void causalSoftmaxGradKernel(const float *probs, float *dp, int64_t seq, float scale) {
  const float *p = probs + blockIdx.x * seq;
  float *d = dp + blockIdx.x * seq;
  int64_t t = blockIdx.x % seq;
  float weighted = 0;
  for (int64_t s = threadIdx.x; s <= t; s += blockDim.x)
    weighted += p[s] * d[s];
  weighted = blockSum(weighted);
  for (int64_t s = threadIdx.x; s < seq; s += blockDim.x)
    d[s] = p[s] * (d[s] - weighted) * scale;
}

template <typename In, typename Out>
void heads(const In *in, Out *out, int64_t batch, int64_t seq, int64_t channels, int64_t heads,
           bool toHeads) {
  headsKernel<<<blocksFor(batch * seq * channels), kBlock, 0, stream()>>>(
      in, out, batch, seq, heads, channels / heads, toHeads);
  checkLaunch("attention heads");
}

} // namespace

/// The scores of one chunk of heads, at most (one head at least).
constexpr size_t kAttentionScratchBytes = size_t(256) << 20;

/// How many (batch, head) pairs' [T, T] scores one chunk holds.
static int64_t attentionChunk(int64_t pairs, int64_t seq) {
  int64_t fit = int64_t(kAttentionScratchBytes / (seq * seq * sizeof(float)));
  return std::max<int64_t>(1, std::min(pairs, fit));
}

template <typename T>
void causalAttention(const T *q, const T *k, const T *v, T *out, Acc<T> *lse, int64_t batch,
                     int64_t seq, int64_t channels, int64_t nHeads) {
  int64_t d = channels / nHeads, n = batch * seq * channels, bh = batch * nHeads;
  int64_t chunk = attentionChunk(bh, seq), head = seq * d, square = seq * seq;
  float *qh = static_cast<float *>(
      Gpu::get().scratch(Scratch::Attention, (4 * n + chunk * square) * sizeof(float)));
  float *kh = qh + n, *vh = kh + n, *oh = vh + n, *scores = oh + n;
  heads(q, qh, batch, seq, channels, nHeads, true);
  heads(k, kh, batch, seq, channels, nHeads, true);
  heads(v, vh, batch, seq, channels, nHeads, true);
  for (int64_t first = 0; first < bh; first += chunk) {
    int64_t pairs = std::min(chunk, bh - first), at = first * head;
    gemmBatched(false, true, seq, seq, d, 1.f / std::sqrt(float(d)), qh + at, d, head, kh + at, d,
                head, 0.f, scores, seq, square, pairs);
    causalSoftmaxKernel<<<unsigned(pairs * seq), kRowBlock, 0, stream()>>>(scores,
                                                                           lse + first * seq, seq);
    checkLaunch("causalSoftmax");
    gemmBatched(false, false, seq, d, seq, 1.f, scores, seq, square, vh + at, d, head, 0.f, oh + at,
                d, head, pairs);
  }
  heads(oh, out, batch, seq, channels, nHeads, false);
}

template <typename T>
void causalAttentionGrad(const T *q, const T *k, const T *v, const Acc<T> *lse, const T *g, T *dq,
                         T *dk, T *dv, int64_t batch, int64_t seq, int64_t channels,
                         int64_t nHeads) {
  int64_t d = channels / nHeads, n = batch * seq * channels, bh = batch * nHeads;
  int64_t chunk = attentionChunk(bh, seq), head = seq * d, square = seq * seq;
  float *gh = static_cast<float *>(
      Gpu::get().scratch(Scratch::Attention, (7 * n + 2 * chunk * square) * sizeof(float)));
  float *qh = gh + n, *kh = qh + n, *vh = kh + n, *dqh = vh + n, *dkh = dqh + n, *dvh = dkh + n,
        *probs = dvh + n, *dp = probs + chunk * square;
  heads(g, gh, batch, seq, channels, nHeads, true);
  heads(q, qh, batch, seq, channels, nHeads, true);
  heads(k, kh, batch, seq, channels, nHeads, true);
  heads(v, vh, batch, seq, channels, nHeads, true);
  const float scale = 1.f / std::sqrt(float(d));
  for (int64_t first = 0; first < bh; first += chunk) {
    int64_t pairs = std::min(chunk, bh - first), at = first * head;
    // P = exp(scale q k^T - lse), masked.
    gemmBatched(false, true, seq, seq, d, scale, qh + at, d, head, kh + at, d, head, 0.f, probs,
                seq, square, pairs);
    causalProbsKernel<<<unsigned(pairs * seq), kRowBlock, 0, stream()>>>(probs, lse + first * seq,
                                                                         seq);
    checkLaunch("causalProbs");
    // dv = P^T g, dP = g v^T.
    gemmBatched(true, false, seq, d, seq, 1.f, probs, seq, square, gh + at, d, head, 0.f, dvh + at,
                d, head, pairs);
    gemmBatched(false, true, seq, seq, d, 1.f, gh + at, d, head, vh + at, d, head, 0.f, dp, seq,
                square, pairs);
    causalSoftmaxGradKernel<<<unsigned(pairs * seq), kRowBlock, 0, stream()>>>(probs, dp, seq,
                                                                               scale);
    checkLaunch("causalSoftmaxGrad");
    // dq = dS k, dk = dS^T q.
    gemmBatched(false, false, seq, d, seq, 1.f, dp, seq, square, kh + at, d, head, 0.f, dqh + at, d,
                head, pairs);
    gemmBatched(true, false, seq, d, seq, 1.f, dp, seq, square, qh + at, d, head, 0.f, dkh + at, d,
                head, pairs);
  }
  heads(dqh, dq, batch, seq, channels, nHeads, false);
  heads(dkh, dk, batch, seq, channels, nHeads, false);
  heads(dvh, dv, batch, seq, channels, nHeads, false);
}

// --- Dropout and optimizers ----------------------------------------------------

namespace {

template <typename T>
__global__ void dropoutKernel(const T *in, T *out, int64_t n, Dims local, Dims global, Dims offsets,
                              float rate, float scale, uint64_t keyPrefix, const float *step) {
  int64_t s = int64_t(step[0]);
  // The CPU target's stream name is dropoutStream(id, layer) + "<step>";
  // the prefix holds everything before the step's digits.
  uint64_t key = hashDecimal(keyPrefix, s);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (s <= 0 || rate <= 0) {
      out[i] = in[i];
      continue;
    }
    int64_t rest = i, index = 0, stride = 1;
    for (int d = local.rank - 1; d >= 0; --d) {
      index += (rest % local.d[d] + offsets.d[d]) * stride;
      rest /= local.d[d];
      stride *= global.d[d];
    }
    out[i] = unitInterval(hashAt(key, uint64_t(index))) >= rate ? float(in[i]) * scale : 0.f;
  }
}

__global__ void adamwKernel(const float *param, const float *grad, const float *m, const float *v,
                            const float *lrPtr, const float *stepPtr, const float *scalePtr,
                            float b1, float b2, double beta1, double beta2, float eps,
                            double weightDecay, float *newParam, float *newM, float *newV,
                            int64_t n) {
  float lr = lrPtr[0], scale = scalePtr[0];
  double step = stepPtr[0];
  bool skip = !isFinite(scale); // the step is skipped: params and state stay
  float correction1 = float(1 - pow(beta1, step)), correction2 = float(1 - pow(beta2, step));
  float decay = float(1 - double(lr) * weightDecay);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (skip) {
      newParam[i] = param[i];
      newM[i] = m[i];
      newV[i] = v[i];
      continue;
    }
    float g = scale * grad[i];
    float mi = b1 * m[i] + (1 - b1) * g;
    float vi = b2 * v[i] + (1 - b2) * g * g;
    newM[i] = mi;
    newV[i] = vi;
    newParam[i] = param[i] * decay - lr * (mi / correction1) / (sqrtf(vi / correction2) + eps);
  }
}

__global__ void sgdKernel(const float *param, const float *grad, const float *buf,
                          const float *lrPtr, const float *scalePtr, float mu, bool momentum,
                          float wd, float *newParam, float *newBuf, int64_t n) {
  float lr = lrPtr[0], scale = scalePtr[0];
  bool skip = !isFinite(scale);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (skip) {
      newParam[i] = param[i];
      newBuf[i] = buf[i];
      continue;
    }
    float d = scale * grad[i] + wd * param[i];
    float b = momentum ? mu * buf[i] + d : d;
    newBuf[i] = b;
    newParam[i] = param[i] - lr * b;
  }
}

} // namespace

template <typename T>
void dropout(const T *in, T *out, int rank, const int64_t *localAt, const int64_t *globalAt,
             const int64_t *offsetsAt, double rate, uint64_t seed, int64_t streamId, int64_t layer,
             const Acc<T> *step) {
  std::vector<int64_t> localShape(localAt, localAt + rank), globalShape(globalAt, globalAt + rank),
      offsets(offsetsAt, offsetsAt + rank);
  uint64_t prefix = hashStart(seed);
  for (unsigned char c : dtlrt::dropoutStream(streamId, layer))
    prefix = hashChar(prefix, c);
  int64_t n = 1;
  for (int64_t d : localShape)
    n *= d;
  dropoutKernel<<<blocksFor(n), kBlock, 0, stream()>>>(
      in, out, n, dimsOf(localShape), dimsOf(globalShape), dimsOf(offsets), float(rate),
      float(1 / (1 - rate)), prefix, step);
  checkLaunch("dropout");
}

void adamwUpdate(const float *param, const float *grad, const float *m, const float *v,
                 const float *lr, const float *step, const float *gradScale, double beta1,
                 double beta2, double eps, double weightDecay, float *newParam, float *newM,
                 float *newV, int64_t n) {
  adamwKernel<<<blocksFor(n), kBlock, 0, stream()>>>(
      param, grad, m, v, lr, step, gradScale, float(beta1), float(beta2), beta1, beta2, float(eps),
      weightDecay, newParam, newM, newV, n);
  checkLaunch("adamwUpdate");
}

void sgdUpdate(const float *param, const float *grad, const float *buf, const float *lr,
               const float *gradScale, double momentum, double weightDecay, float *newParam,
               float *newBuf, int64_t n) {
  sgdKernel<<<blocksFor(n), kBlock, 0, stream()>>>(param, grad, buf, lr, gradScale, float(momentum),
                                                   momentum != 0, float(weightDecay), newParam,
                                                   newBuf, n);
  checkLaunch("sgdUpdate");
}

DTLRT_INSTANTIATE_STORAGE(float)
DTLRT_INSTANTIATE_STORAGE(bf16)
DTLRT_INSTANTIATE_STATISTICS(float)
DTLRT_INSTANTIATE_GEMM(bf16, float)
DTLRT_INSTANTIATE_TRANSFORMER_GRADS(bf16, float)
template void broadcast<int32_t>(const int32_t *, int32_t *, const int64_t *, const int64_t *, int);

} // namespace dtlrt::cuda
