//===- Context.h - one rank's place in the mesh and its collectives -*- C++ -*-===//

#ifndef DTLRT_CONTEXT_H
#define DTLRT_CONTEXT_H

#include "dtlrt/Runtime.h"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <map>

namespace dtlrt {

class Context {
public:
  Context(std::vector<int> axisSizes, int rank);
  ~Context();

  /// This rank's index among the ranks spanned by `axes` (major to minor),
  /// and how many they are.
  int indexAlong(const Axes &axes) const;
  int spanOf(const Axes &axes) const;
  size_t axisCount() const { return sizes_.size(); }

  /// Sum over the ranks that differ only along `axes` (in place).
  template <typename T> void allReduceSum(T *data, int64_t count, const Axes &axes);
  /// Concatenates the local tensors of the ranks along `axes` on dimension `dim`.
  template <typename T>
  void allGather(const T *in, T *out, const std::vector<int64_t> &localShape, int dim,
                 const Axes &axes);
  /// Sums over the ranks along `axes` and keeps this rank's slice of the sum
  /// on dimension `dim` (all-reduce + slice for the price of half).
  template <typename T>
  void reduceScatterSum(const T *in, T *out, const std::vector<int64_t> &inShape, int dim,
                        const Axes &axes);
  /// Moves the split along `axes` from dimension `concatDim` to `splitDim`:
  /// each rank sends the j-th part of its `splitDim` to rank j and
  /// concatenates what it receives along `concatDim`.
  template <typename T>
  void allToAll(const T *in, T *out, const std::vector<int64_t> &inShape, int splitDim,
                int concatDim, const Axes &axes);
  /// Point to point (a pipeline stage's activations or gradients): sends
  /// `count` elements to, or receives them from, the rank at index `peer`
  /// of this rank's group along `axes`. Blocking; between one pair, in
  /// program order.
  template <typename T> void send(const T *data, int64_t count, int peer, const Axes &axes);
  template <typename T> void recv(T *data, int64_t count, int peer, const Axes &axes);
  /// Seconds spent in send and recv so far: a pipeline stage waiting for
  /// its neighbours (the bubble) and moving activations.
  double pointToPointSeconds() const { return pointToPointSeconds_; }
  /// Around a pipeline's stages (the generated step's switch on the stage):
  /// the seconds this rank spent in its stage's schedule so far.
  void beginStages() { stagesStart_ = MPI_Wtime(); }
  void endStages() { stageSeconds_ += MPI_Wtime() - stagesStart_; }
  double stageSeconds() const { return stageSeconds_; }
  /// This rank's slice, on dimension `dim`, of a tensor replicated along `axes`.
  template <typename T>
  void allSlice(const T *in, T *out, const std::vector<int64_t> &inShape, int dim,
                const Axes &axes);

  /// The MPI communicator of this rank's group along `axes` (ranked by
  /// indexAlong), made on first use.
  MPI_Comm commFor(const Axes &axes);

  /// MPI counts are ints: a collective moves at most this many elements per
  /// MPI call, in pieces (INT_MAX unless a test makes it small).
  static void setMaxElementsPerCall(int64_t n) { maxElementsPerCall_ = n; }
  static int64_t maxElementsPerCall() { return maxElementsPerCall_; }

private:
  /// The group along `axes`, made now (collectively over all ranks).
  MPI_Comm makeComm(const Axes &axes);
  std::vector<int> sizes_;
  std::vector<int> coords_; ///< along each mesh axis (row-major: last axis fastest)
  std::map<Axes, MPI_Comm> comms_;
  double pointToPointSeconds_ = 0, stagesStart_ = 0, stageSeconds_ = 0;
  static inline int64_t maxElementsPerCall_ = INT32_MAX;
};

/// Calls fn(offset, n) for consecutive pieces of [0, count), each at most
/// `piece` long (one call for count 0).
template <typename Fn> void forEachPiece(int64_t count, int64_t piece, Fn fn) {
  int64_t offset = 0;
  do {
    int64_t n = std::min(piece, count - offset);
    fn(offset, n);
    offset += n;
  } while (offset < count);
}

} // namespace dtlrt

#endif // DTLRT_CONTEXT_H
