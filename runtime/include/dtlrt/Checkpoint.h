//===- Checkpoint.h - trained weights as safetensors ------------*- C++ -*-===//

#ifndef DTLRT_CHECKPOINT_H
#define DTLRT_CHECKPOINT_H

#include "dtlrt/Runtime.h"

#include <map>
#include <string>
#include <vector>

namespace dtlrt {

/// One tensor to save: its spec (global shape, layout) and this rank's part.
struct SavedTensor {
  const TensorSpec *spec;
  const void *local;
};

/// Gathers every tensor whole onto rank 0, which writes one safetensors file
/// (8-byte little-endian header length, JSON header with dtype, shape and
/// data_offsets per tensor plus `__metadata__`, then the raw bytes).
/// Atomic: written to PATH.tmp, synced, renamed over PATH. Collective: every
/// rank calls it. Throws DataError (on rank 0) when the file cannot be written.
void saveSafetensors(const std::string &path, const std::vector<SavedTensor> &tensors,
                     const std::map<std::string, std::string> &metadata, const Context &ctx,
                     int rank);

} // namespace dtlrt

#endif // DTLRT_CHECKPOINT_H
