//===- Collectives.cu - the mesh's shaped collectives over NCCL -----------===//
//
// The same semantics as dtlrt::Context's MPI collectives (Collectives.cpp):
// a split dimension is moved to the front (or back) with strided copies on
// the communication stream, around one NCCL call on the group's
// communicator. Each collective's staging buffer is its own (by slot), so
// collectives in flight together never share bytes.
//
//===----------------------------------------------------------------------===//

#include "Gpu.h"

#include <type_traits>

namespace dtlrt::cuda {

namespace {

template <typename T> ncclDataType_t ncclType() {
  return std::is_same_v<T, float>  ? ncclFloat32
         : std::is_same_v<T, bf16> ? ncclBfloat16
                                   : ncclInt32;
}

/// [a, b, c] -> [b, a, c] (elements of `bytes`), as 2-D copies looping over
/// the smaller of a and b.
void swapLeading(const void *in, void *out, int64_t a, int64_t b, int64_t c, size_t bytes,
                 cudaStream_t s) {
  const char *src = static_cast<const char *>(in);
  char *dst = static_cast<char *>(out);
  size_t row = size_t(c) * bytes;
  if (a == 1 || b == 1) {
    check(cudaMemcpyAsync(dst, src, a * b * row, cudaMemcpyDeviceToDevice, s), "copy");
    return;
  }
  if (b <= a) {
    for (int64_t j = 0; j < b; ++j) // dst[j, :, :] = src[:, j, :]
      check(cudaMemcpy2DAsync(dst + j * a * row, row, src + j * row, b * row, row, a,
                              cudaMemcpyDeviceToDevice, s),
            "strided copy");
  } else {
    for (int64_t i = 0; i < a; ++i) // dst[:, i, :] = src[i, :, :]
      check(cudaMemcpy2DAsync(dst + i * row, a * row, src + i * b * row, row, row, b,
                              cudaMemcpyDeviceToDevice, s),
            "strided copy");
  }
}

/// The product of `shape[from, to)`.
int64_t product(const std::vector<int64_t> &shape, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t d = from; d < to; ++d)
    n *= shape[d];
  return n;
}

} // namespace

template <typename T>
void allReduceSum(Context &ctx, const T *in, T *out, int64_t count, const Axes &axes, int slot,
                  const char *what) {
  Gpu &gpu = Gpu::get();
  cudaStream_t s = gpu.beginCollective(slot, what);
  if (ctx.spanOf(axes) == 1)
    check(cudaMemcpyAsync(out, in, count * sizeof(T), cudaMemcpyDeviceToDevice, s), "copy");
  else
    gpu.checkNccl(
        ncclAllReduce(in, out, count, ncclType<T>(), ncclSum, gpu.communicator(ctx, axes), s),
        what);
  gpu.endCollective(slot);
}

template <typename T>
void allGather(Context &ctx, const T *in, T *out, const std::vector<int64_t> &localShape, int dim,
               const Axes &axes, int slot, const char *what) {
  Gpu &gpu = Gpu::get();
  int64_t n = ctx.spanOf(axes), outer = product(localShape, 0, dim),
          chunk = product(localShape, dim, localShape.size()), local = outer * chunk;
  ncclComm_t comm = gpu.communicator(ctx, axes);
  cudaStream_t s = gpu.beginCollective(slot, what);
  if (outer == 1) {
    gpu.checkNccl(ncclAllGather(in, out, local, ncclType<T>(), comm, s), what);
  } else {
    // Received [n, outer, chunk] -> out [outer, n, chunk].
    T *received = static_cast<T *>(gpu.slotScratch(slot, n * local * sizeof(T)));
    gpu.checkNccl(ncclAllGather(in, received, local, ncclType<T>(), comm, s), what);
    swapLeading(received, out, n, outer, chunk, sizeof(T), s);
  }
  gpu.endCollective(slot);
}

template <typename T>
void reduceScatterSum(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape,
                      int dim, const Axes &axes, int slot, const char *what) {
  Gpu &gpu = Gpu::get();
  int64_t n = ctx.spanOf(axes), outer = product(inShape, 0, dim),
          chunk = product(inShape, dim, inShape.size()) / n, local = outer * chunk;
  ncclComm_t comm = gpu.communicator(ctx, axes);
  cudaStream_t s = gpu.beginCollective(slot, what);
  const T *staged = in;
  if (outer != 1) {
    // in [outer, n, chunk] -> [n, outer, chunk]: each destination's part contiguous.
    T *buffer = static_cast<T *>(gpu.slotScratch(slot, n * local * sizeof(T)));
    swapLeading(in, buffer, outer, n, chunk, sizeof(T), s);
    staged = buffer;
  }
  gpu.checkNccl(ncclReduceScatter(staged, out, local, ncclType<T>(), ncclSum, comm, s), what);
  gpu.endCollective(slot);
}

template <typename T>
void allToAll(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape, int splitDim,
              int concatDim, const Axes &axes, int slot, const char *what) {
  Gpu &gpu = Gpu::get();
  int64_t n = ctx.spanOf(axes), total = product(inShape, 0, inShape.size()), part = total / n;
  std::vector<int64_t> partShape = inShape;
  partShape[splitDim] /= n;
  ncclComm_t comm = gpu.communicator(ctx, axes);
  cudaStream_t s = gpu.beginCollective(slot, what);
  T *sent = static_cast<T *>(gpu.slotScratch(slot, 2 * total * sizeof(T))),
    *received = sent + total;
  // in [outer, n, inner] around splitDim -> [n, part]: rank j's part contiguous.
  int64_t outerSplit = product(inShape, 0, splitDim);
  swapLeading(in, sent, outerSplit, n, part / outerSplit, sizeof(T), s);
  gpu.checkNccl(ncclGroupStart(), what);
  for (int64_t j = 0; j < n; ++j) {
    gpu.checkNccl(ncclSend(sent + j * part, part, ncclType<T>(), int(j), comm, s), what);
    gpu.checkNccl(ncclRecv(received + j * part, part, ncclType<T>(), int(j), comm, s), what);
  }
  gpu.checkNccl(ncclGroupEnd(), what);
  // [n, outer, inner] around concatDim of a part -> out [outer, n, inner].
  int64_t outerConcat = product(partShape, 0, concatDim);
  swapLeading(received, out, n, outerConcat, part / outerConcat, sizeof(T), s);
  gpu.endCollective(slot);
}

template <typename T>
void send(Context &ctx, const T *data, int64_t count, int peer, const Axes &axes, int slot,
          const char *what) {
  Gpu &gpu = Gpu::get();
  cudaStream_t s = gpu.beginCollective(slot, what);
  gpu.checkNccl(ncclSend(data, count, ncclType<T>(), peer, gpu.communicator(ctx, axes), s), what);
  gpu.endCollective(slot);
}

template <typename T>
void recv(Context &ctx, T *data, int64_t count, int peer, const Axes &axes, int slot,
          const char *what) {
  Gpu &gpu = Gpu::get();
  cudaStream_t s = gpu.beginCollective(slot, what);
  gpu.checkNccl(ncclRecv(data, count, ncclType<T>(), peer, gpu.communicator(ctx, axes), s), what);
  gpu.endCollective(slot);
}

template <typename T>
void allSlice(Context &ctx, const T *in, T *out, const std::vector<int64_t> &inShape, int dim,
              const Axes &axes) {
  int64_t n = ctx.spanOf(axes), j = ctx.indexAlong(axes), outer = product(inShape, 0, dim),
          chunk = product(inShape, dim, inShape.size()) / n;
  size_t row = chunk * sizeof(T);
  check(cudaMemcpy2DAsync(out, row, in + j * chunk, n * row, row, outer, cudaMemcpyDeviceToDevice,
                          stream()),
        "all_slice");
}

#define DTLRT_INSTANTIATE(T)                                                                       \
  template void allReduceSum<T>(Context &, const T *, T *, int64_t, const Axes &, int,             \
                                const char *);                                                     \
  template void allGather<T>(Context &, const T *, T *, const std::vector<int64_t> &, int,         \
                             const Axes &, int, const char *);                                     \
  template void reduceScatterSum<T>(Context &, const T *, T *, const std::vector<int64_t> &, int,  \
                                    const Axes &, int, const char *);                              \
  template void allToAll<T>(Context &, const T *, T *, const std::vector<int64_t> &, int, int,     \
                            const Axes &, int, const char *);                                      \
  template void allSlice<T>(Context &, const T *, T *, const std::vector<int64_t> &, int,          \
                            const Axes &);                                                         \
  template void send<T>(Context &, const T *, int64_t, int, const Axes &, int, const char *);      \
  template void recv<T>(Context &, T *, int64_t, int, const Axes &, int, const char *);
DTLRT_INSTANTIATE(float)
DTLRT_INSTANTIATE(int32_t)
DTLRT_INSTANTIATE(bf16)

} // namespace dtlrt::cuda
