//===- ShardedCheckpoint.h - the whole training state, rank by rank -*- C++ -*-===//
//
// A checkpoint is a directory `step-N/` under the checkpoint root: one
// safetensors file per writing rank (`rank-R.safetensors`, the slices that
// rank owns; a replicated slice is written by one of its holders) and
// `index.json`, which names every global tensor, its shape and dtype, and
// which file holds which slice with the slice's CRC-32, plus the training
// position and the model's signature. It is written into `step-N.tmp/`,
// synced, renamed to `step-N/`, and `latest` is replaced atomically to
// name it: a crash at any moment leaves the previous checkpoint whole.
// Loading reads the slices overlapping this rank's part from whichever files
// hold them, so a checkpoint resumes on any mesh.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_SHARDEDCHECKPOINT_H
#define DTLRT_SHARDEDCHECKPOINT_H

#include "dtlrt/Context.h"

#include <string>
#include <vector>

namespace dtlrt {

/// Where the training loop stands, saved with the tensors.
struct TrainPosition {
  int64_t step = 0;            ///< steps done
  int64_t totalSteps = 0;      ///< the run's step count (the lr schedule's horizon)
  int64_t samplesSeen = 0;     ///< train samples drawn so far from the seed's permutations
  int64_t samplesPerEpoch = 0; ///< of the train source
  int64_t seed = 0;
  int64_t skippedInARow = 0; ///< consecutive steps whose update was skipped
};

/// One tensor of the state (a param or optimizer state) and this rank's part.
struct StateTensor {
  const TensorSpec *spec;
  void *local;
};

/// What a checkpoint must match to be loaded: the model's signature (a hash
/// of every state tensor's name, global shape and dtype, whatever the mesh)
/// and, for messages, its names.
struct ModelIdentity {
  std::string model, source, signature;
  std::vector<std::string> axisNames;
  std::vector<int> axisSizes;
};

/// The signature of `tensors`: a hex FNV-1a hash of their names, dtypes and
/// global shapes, in name order.
std::string stateSignature(const std::vector<StateTensor> &tensors);

/// Throws DataError unless `root` may hold checkpoints: absent, an empty
/// directory, or a directory of nothing but checkpoint entries (`step-N`,
/// `step-N.tmp`, `latest`).
void checkCheckpointRoot(const std::string &root);

/// The complete checkpoint `latest` names under `root`, or "" when there is
/// none (no root, no `latest`). Throws DataError when `latest` exists but
/// names no complete checkpoint.
std::string latestCheckpoint(const std::string &root);

/// Writes `step-N/` under `root` (made if missing) and points `latest` at
/// it, then removes all but the newest `keepLast` checkpoints (0: keeps
/// all). Collective: every rank calls it; it returns on every rank or
/// throws on every rank (DataError with the first failing rank's message),
/// after removing what the failed save made. Returns the directory written.
std::string saveCheckpoint(const std::string &root, int64_t keepLast, const ModelIdentity &identity,
                           const TrainPosition &position, const std::vector<StateTensor> &tensors,
                           Context &ctx, int rank);

/// Reads the checkpoint in `dir` (a `step-N` directory, or a root whose
/// `latest` is used) into each tensor's local part. Collective, like
/// saveCheckpoint; refuses another model's checkpoint, a missing or short
/// file, a bad checksum or a wrong dtype, naming the file and the tensor.
TrainPosition loadCheckpoint(const std::string &dir, const ModelIdentity &identity,
                             const std::vector<StateTensor> &tensors, Context &ctx, int rank);

/// Throws on every rank when any rank's `error` is not empty: the message
/// of the lowest failing rank, prefixed with "rank R: " when not every rank
/// failed. Collective.
void throwIfAnyRankFailed(const std::string &error, int rank);

} // namespace dtlrt

#endif // DTLRT_SHARDEDCHECKPOINT_H
