//===- Bf16Gemm.cpp - bf16 GEMMs on oneDNN, f32 BLAS where it has none ---===//
//
// OpenBLAS has no bf16 GEMM that takes bf16 outputs and a bias; oneDNN's
// matmul does, with AVX512-BF16 or AMX kernels where the CPU has them. A
// primitive is made once per shape (a step has a handful) and run on the
// caller's thread pool. On a CPU oneDNN cannot run bf16 on (no AVX-512),
// the operands are widened to f32 and OpenBLAS multiplies them: the same
// products, slower.
//
//===----------------------------------------------------------------------===//

#include "Blas.h"
#include "Metrics.h"

#include "dtlrt/Kernels.h"
#include "dtlrt/Runtime.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace dtlrt {
namespace {

using Shape = std::tuple<bool, bool, int64_t, int64_t, int64_t, bool, bool>;

/// A matmul primitive and the layouts of its operands.
struct Gemm {
  dnnl::matmul matmul;
  dnnl::memory::desc a, b, bias, c;
};

struct OneDnn {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mutex;
  /// nullopt where oneDNN has no bf16 matmul for this CPU.
  std::map<Shape, std::optional<Gemm>> gemms;
  int64_t kernelBytes = 0;

  static OneDnn &get() {
    static OneDnn instance;
    return instance;
  }

  /// The matmul for c[m, n] = op(a) op(b) (+ bias) in bf16, c in bf16 or f32.
  std::optional<Gemm> &gemmFor(const Shape &shape) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = gemms.find(shape);
    if (it != gemms.end())
      return it->second;
    auto [ta, tb, m, n, k, bias, f32Out] = shape;
    using dt = dnnl::memory::data_type;
    // Strides say where op(x)[i, j] lies: a transposed operand is read in
    // place, as BLAS's transposition flags do.
    dnnl::memory::desc a({m, k}, dt::bf16,
                         ta ? dnnl::memory::dims{1, m} : dnnl::memory::dims{k, 1});
    dnnl::memory::desc b({k, n}, dt::bf16,
                         tb ? dnnl::memory::dims{1, k} : dnnl::memory::dims{n, 1});
    dnnl::memory::desc c({m, n}, f32Out ? dt::f32 : dt::bf16, dnnl::memory::dims{n, 1});
    dnnl::memory::desc biasRow({1, n}, dt::bf16, dnnl::memory::dims{n, 1});
    std::optional<Gemm> made;
    int64_t heapBefore = heapBytesInUse();
    try {
      auto desc = bias ? dnnl::matmul::desc(a, b, biasRow, c) : dnnl::matmul::desc(a, b, c);
      made = Gemm{dnnl::matmul(dnnl::matmul::primitive_desc(desc, engine)), a, b, biasRow, c};
    } catch (const dnnl::error &) {
      made.reset();
    }
    kernelBytes += heapBytesInUse() - heapBefore;
    return gemms.emplace(shape, std::move(made)).first->second;
  }
};

template <typename U>
void widenedMatmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16 *a, const bf16 *b,
                   const bf16 *bias, U *c) {
  std::vector<float> fa(a, a + m * k), fb(b, b + k * n), fc(m * n);
  std::vector<float> fbias = bias ? std::vector<float>(bias, bias + n) : std::vector<float>();
  matmul(ta, tb, m, n, k, fa.data(), fb.data(), bias ? fbias.data() : nullptr, fc.data());
  std::copy(fc.begin(), fc.end(), c);
}

template <typename U>
void matmulInto(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16 *a, const bf16 *b,
                const bf16 *bias, U *c) {
  OneDnn &dnn = OneDnn::get();
  Shape shape{ta, tb, m, n, k, bias != nullptr, std::is_same_v<U, float>};
  std::optional<Gemm> &gemm = dnn.gemmFor(shape);
  if (!gemm) {
    widenedMatmul(ta, tb, m, n, k, a, b, bias, c);
    return;
  }
  auto wrap = [&](const dnnl::memory::desc &d, const void *p) {
    return dnnl::memory(d, dnn.engine, const_cast<void *>(p));
  };
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(gemm->a, a)},
                                             {DNNL_ARG_WEIGHTS, wrap(gemm->b, b)},
                                             {DNNL_ARG_DST, wrap(gemm->c, c)}};
  if (bias)
    args.emplace(DNNL_ARG_BIAS, wrap(gemm->bias, bias));
  gemm->matmul.execute(dnn.stream, args);
  dnn.stream.wait();
}

} // namespace

int64_t gemmKernelBytes() {
  OneDnn &dnn = OneDnn::get();
  std::lock_guard<std::mutex> lock(dnn.mutex);
  return dnn.kernelBytes;
}

void bf16Matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16 *a, const bf16 *b,
                const bf16 *bias, bf16 *c) {
  matmulInto(ta, tb, m, n, k, a, b, bias, c);
}

void bf16Matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16 *a, const bf16 *b,
                const bf16 *bias, float *c) {
  matmulInto(ta, tb, m, n, k, a, b, bias, c);
}

} // namespace dtlrt
