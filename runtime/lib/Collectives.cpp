//===- Collectives.cpp - mesh coordinates and MPI collectives per axis group ===//

#include "dtlrt/Bf16.h"
#include "dtlrt/Context.h"
#include "dtlrt/Watchdog.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace dtlrt {

Context::Context(std::vector<int> axisSizes, int rank) : sizes_(std::move(axisSizes)) {
  coords_.resize(sizes_.size());
  int rest = rank;
  for (int i = (int)sizes_.size() - 1; i >= 0; --i) {
    coords_[i] = rest % sizes_[i];
    rest /= sizes_[i];
  }
}

Context::~Context() {
  for (auto &[axes, comm] : comms_)
    MPI_Comm_free(&comm);
}

int Context::indexAlong(const Axes &axes) const {
  int index = 0;
  for (int a : axes)
    index = index * sizes_[a] + coords_[a];
  return index;
}

int Context::spanOf(const Axes &axes) const {
  int span = 1;
  for (int a : axes)
    span *= sizes_[a];
  return span;
}

namespace {
/// Tells the watchdog this rank waits in a collective, then computes again.
struct InCollective {
  InCollective(const char *what, int64_t count, const Axes &axes) {
    watchdogCollective(what, count, axes);
  }
  ~InCollective() { watchdogBeat("computing"); }
};
} // namespace

/// The ranks that share every coordinate outside `axes` form one group,
/// ordered by their index along `axes`. Made once per axis set.
///
/// Making one is collective over all ranks, so all make them in one order:
/// on the first call, every set of axes in ascending order. Pipeline stages
/// run different code, and would otherwise first need different groups.
MPI_Comm Context::commFor(const Axes &axes) {
  if (comms_.empty())
    for (unsigned mask = 1; mask < (1u << sizes_.size()); ++mask) {
      Axes subset;
      for (int a = 0; a < (int)sizes_.size(); ++a)
        if (mask & (1u << a))
          subset.push_back(a);
      makeComm(subset);
    }
  auto it = comms_.find(axes);
  if (it != comms_.end())
    return it->second;
  return makeComm(axes);
}

MPI_Comm Context::makeComm(const Axes &axes) {
  int color = 0;
  for (size_t a = 0; a < sizes_.size(); ++a)
    if (std::find(axes.begin(), axes.end(), (int)a) == axes.end())
      color = color * sizes_[a] + coords_[a];
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, color, indexAlong(axes), &comm);
  comms_[axes] = comm;
  return comm;
}

template <typename T> static MPI_Datatype mpiType() {
  if (std::is_same_v<T, float>)
    return MPI_FLOAT;
  if (std::is_same_v<T, int32_t>)
    return MPI_INT32_T;
  if (std::is_same_v<T, bf16>)
    return MPI_UINT16_T; // moved as bits, summed by addBf16
  return MPI_DOUBLE;
}

/// MPI has no bf16: sums widen each pair to f32 and round the result.
static void addBf16(void *in, void *inout, int *count, MPI_Datatype *) {
  const bf16 *a = static_cast<const bf16 *>(in);
  bf16 *b = static_cast<bf16 *>(inout);
  for (int i = 0; i < *count; ++i)
    b[i] = float(a[i]) + float(b[i]);
}

template <typename T> static MPI_Op mpiSum() {
  if constexpr (std::is_same_v<T, bf16>) {
    static MPI_Op op = [] {
      MPI_Op made;
      MPI_Op_create(&addBf16, /*commute=*/1, &made);
      return made;
    }();
    return op;
  }
  return MPI_SUM;
}

template <typename T> void Context::allReduceSum(T *data, int64_t count, const Axes &axes) {
  if (spanOf(axes) == 1)
    return;
  InCollective waiting("all_reduce", count, axes);
  forEachPiece(count, maxElementsPerCall_, [&](int64_t offset, int64_t n) {
    MPI_Allreduce(MPI_IN_PLACE, data + offset, int(n), mpiType<T>(), mpiSum<T>(), commFor(axes));
  });
}

template <typename T> void Context::send(const T *data, int64_t count, int peer, const Axes &axes) {
  InCollective waiting("send", count, axes);
  double start = MPI_Wtime();
  forEachPiece(count, maxElementsPerCall_, [&](int64_t offset, int64_t n) {
    MPI_Send(data + offset, int(n), mpiType<T>(), peer, 0, commFor(axes));
  });
  pointToPointSeconds_ += MPI_Wtime() - start;
}

template <typename T> void Context::recv(T *data, int64_t count, int peer, const Axes &axes) {
  InCollective waiting("recv", count, axes);
  double start = MPI_Wtime();
  forEachPiece(count, maxElementsPerCall_, [&](int64_t offset, int64_t n) {
    MPI_Recv(data + offset, int(n), mpiType<T>(), peer, 0, commFor(axes), MPI_STATUS_IGNORE);
  });
  pointToPointSeconds_ += MPI_Wtime() - start;
}

/// Views a tensor as [outer, dim, inner] around dimension `dim`.
static void around(const std::vector<int64_t> &shape, int dim, int64_t &outer, int64_t &inner) {
  outer = inner = 1;
  for (int i = 0; i < dim; ++i)
    outer *= shape[i];
  for (size_t i = dim + 1; i < shape.size(); ++i)
    inner *= shape[i];
}

template <typename T>
void Context::allGather(const T *in, T *out, const std::vector<int64_t> &localShape, int dim,
                        const Axes &axes) {
  int n = spanOf(axes);
  int64_t outer, inner, local = numElements(localShape);
  around(localShape, dim, outer, inner);
  std::vector<T> received(local * n), piece;
  InCollective waiting("all_gather", local * n, axes);
  // Piece by piece when a rank's part is too long for one call: the same
  // slice of every rank's part, then each moved to its place.
  forEachPiece(local, maxElementsPerCall_, [&](int64_t offset, int64_t c) {
    bool whole = c == local;
    piece.resize(whole ? 0 : c * n);
    T *to = whole ? received.data() : piece.data();
    MPI_Allgather(in + offset, int(c), mpiType<T>(), to, int(c), mpiType<T>(), commFor(axes));
    for (int j = 0; j < n && !whole; ++j)
      std::memcpy(received.data() + j * local + offset, piece.data() + j * c, c * sizeof(T));
  });
  int64_t chunk = localShape[dim] * inner;
  for (int j = 0; j < n; ++j)
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(out + (o * n + j) * chunk, received.data() + j * local + o * chunk,
                  chunk * sizeof(T));
}

template <typename T>
void Context::reduceScatterSum(const T *in, T *out, const std::vector<int64_t> &inShape, int dim,
                               const Axes &axes) {
  int n = spanOf(axes);
  int64_t outer, inner, total = numElements(inShape);
  around(inShape, dim, outer, inner);
  int64_t chunk = inShape[dim] / n * inner, local = total / n;
  // Lay out each destination's slice contiguously, in rank order.
  std::vector<T> staged(total);
  for (int j = 0; j < n; ++j)
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(staged.data() + j * local + o * chunk, in + (o * n + j) * chunk,
                  chunk * sizeof(T));
  InCollective waiting("reduce_scatter", total, axes);
  std::vector<T> piece;
  forEachPiece(local, maxElementsPerCall_, [&](int64_t offset, int64_t c) {
    bool whole = c == local;
    piece.resize(whole ? 0 : c * n);
    for (int j = 0; j < n && !whole; ++j)
      std::memcpy(piece.data() + j * c, staged.data() + j * local + offset, c * sizeof(T));
    MPI_Reduce_scatter_block(whole ? staged.data() : piece.data(), out + offset, int(c),
                             mpiType<T>(), mpiSum<T>(), commFor(axes));
  });
}

/// Row-major index <-> flat offset.
static void unravel(int64_t flat, const std::vector<int64_t> &shape, std::vector<int64_t> &index) {
  for (int d = (int)shape.size() - 1; d >= 0; --d) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
}
static int64_t ravel(const std::vector<int64_t> &index, const std::vector<int64_t> &shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + index[d];
  return flat;
}

template <typename T>
void Context::allToAll(const T *in, T *out, const std::vector<int64_t> &inShape, int splitDim,
                       int concatDim, const Axes &axes) {
  int n = spanOf(axes);
  std::vector<int64_t> chunkShape = inShape, index(inShape.size());
  chunkShape[splitDim] /= n;
  int64_t chunk = numElements(chunkShape), total = numElements(inShape);
  std::vector<T> sent(total), received(total);
  for (int64_t flat = 0; flat < total; ++flat) {
    unravel(flat, inShape, index);
    int64_t to = index[splitDim] / chunkShape[splitDim];
    index[splitDim] %= chunkShape[splitDim];
    sent[to * chunk + ravel(index, chunkShape)] = in[flat];
  }
  InCollective waiting("all_to_all", total, axes);
  std::vector<T> sentPiece, receivedPiece;
  forEachPiece(chunk, maxElementsPerCall_, [&](int64_t offset, int64_t c) {
    if (c == chunk) {
      MPI_Alltoall(sent.data(), int(c), mpiType<T>(), received.data(), int(c), mpiType<T>(),
                   commFor(axes));
      return;
    }
    sentPiece.resize(c * n);
    receivedPiece.resize(c * n);
    for (int j = 0; j < n; ++j)
      std::memcpy(sentPiece.data() + j * c, sent.data() + j * chunk + offset, c * sizeof(T));
    MPI_Alltoall(sentPiece.data(), int(c), mpiType<T>(), receivedPiece.data(), int(c), mpiType<T>(),
                 commFor(axes));
    for (int j = 0; j < n; ++j)
      std::memcpy(received.data() + j * chunk + offset, receivedPiece.data() + j * c,
                  c * sizeof(T));
  });
  std::vector<int64_t> outShape = chunkShape;
  outShape[concatDim] *= n;
  for (int from = 0; from < n; ++from)
    for (int64_t c = 0; c < chunk; ++c) {
      unravel(c, chunkShape, index);
      index[concatDim] += from * chunkShape[concatDim];
      out[ravel(index, outShape)] = received[from * chunk + c];
    }
}

template <typename T>
void Context::allSlice(const T *in, T *out, const std::vector<int64_t> &inShape, int dim,
                       const Axes &axes) {
  int n = spanOf(axes), j = indexAlong(axes);
  int64_t outer, inner;
  around(inShape, dim, outer, inner);
  int64_t chunk = inShape[dim] / n * inner;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out + o * chunk, in + (o * n + j) * chunk, chunk * sizeof(T));
}

#define DTLRT_INSTANTIATE(T)                                                                       \
  template void Context::allReduceSum<T>(T *, int64_t, const Axes &);                              \
  template void Context::allGather<T>(const T *, T *, const std::vector<int64_t> &, int,           \
                                      const Axes &);                                               \
  template void Context::allSlice<T>(const T *, T *, const std::vector<int64_t> &, int,            \
                                     const Axes &);                                                \
  template void Context::reduceScatterSum<T>(const T *, T *, const std::vector<int64_t> &, int,    \
                                             const Axes &);                                        \
  template void Context::allToAll<T>(const T *, T *, const std::vector<int64_t> &, int, int,       \
                                     const Axes &);                                                \
  template void Context::send<T>(const T *, int64_t, int, const Axes &);                           \
  template void Context::recv<T>(T *, int64_t, int, const Axes &);
// Labels (i32) are sliced and gathered like any tensor.
DTLRT_INSTANTIATE(float)
DTLRT_INSTANTIATE(double)
DTLRT_INSTANTIATE(int32_t)
DTLRT_INSTANTIATE(bf16)

} // namespace dtlrt
