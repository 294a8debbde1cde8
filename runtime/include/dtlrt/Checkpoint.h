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

/// One whole tensor, as written to a file.
struct GlobalTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void *data;
};

/// Writes one safetensors file (8-byte little-endian header length, JSON
/// header with dtype, shape and data_offsets per tensor plus
/// `__metadata__`, then the raw bytes). Atomic: written to a temporary of
/// this process's own beside PATH, synced, renamed over PATH, and the
/// directory synced. PATH must be a regular file or not exist: a directory,
/// link, FIFO or device is refused before anything is written. Throws
/// DataError naming the path; a failed write leaves no temporary behind.
void writeSafetensors(const std::string &path, const std::vector<GlobalTensor> &tensors,
                      const std::map<std::string, std::string> &metadata);

/// Throws DataError unless `path` is a regular file or does not exist.
void refuseToReplace(const std::string &path);

/// fsync of a directory, so the entries made or renamed in it last.
void syncDirectory(const std::string &dir);

/// The directory part of `path` ("." for a bare name).
std::string parentDirectory(const std::string &path);

/// zlib's CRC-32 of `bytes` bytes, continuing from `crc`.
uint32_t crc32Of(const void *data, size_t bytes, uint32_t crc = 0);

/// Gathers every tensor whole onto rank 0, which writes them with
/// writeSafetensors. Collective: every rank calls it. Throws DataError (on
/// rank 0) when the file cannot be written.
void saveSafetensors(const std::string &path, const std::vector<SavedTensor> &tensors,
                     const std::map<std::string, std::string> &metadata, const Context &ctx,
                     int rank);

/// A tensor listed in a safetensors header; its bytes are [begin, end) after
/// the header.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct SafetensorsHeader {
  std::string path;
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsEntry> tensors; ///< in the header's order
  uint64_t dataOffset = 0;               ///< where the data starts in the file
};

/// Reads and checks a safetensors file's header: a JSON object, dtypes dtlc
/// writes, offsets inside the file that match each shape. Throws DataError
/// naming the path and what is wrong.
SafetensorsHeader readSafetensorsHeader(const std::string &path);

} // namespace dtlrt

#endif // DTLRT_CHECKPOINT_H
