//===- Data.h - datasets: IDX files, token shards, synthetic data -*- C++ -*-===//

#ifndef DTLRT_DATA_H
#define DTLRT_DATA_H

#include "dtlrt/Runtime.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace dtlrt {

/// A user-facing data problem: the message names the file and what is wrong.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One IDX file's samples, kept as stored (big-endian u8, i32 or f32) and
/// converted on access: a plain file is memory-mapped, so a rank touches
/// only the pages of the samples it feeds; a gzip file is decompressed once.
struct Dataset {
  std::string path;
  int64_t count = 0;
  std::vector<int64_t> sampleShape;
  int64_t sampleSize() const { return numElements(sampleShape); }
  /// Element `col` of sample `sample` as a model input: u8 pixels as
  /// value / 255, i32 and f32 as they are.
  float value(int64_t sample, int64_t col) const;
  /// Sample `sample` as a class label (files of one value per sample).
  int32_t label(int64_t sample) const;

  int elementType = 0x08; ///< IDX type code: 0x08 u8, 0x0C i32, 0x0D f32
  const unsigned char *elements = nullptr;
  std::shared_ptr<const void> storage; ///< owns `elements` (a mapping or a buffer)
};

/// Opens an IDX file (MNIST family; gzip-compressed or not), checking its
/// header and that it holds every element the header promises.
Dataset readIdx(const std::string &path);

/// An llm.c token shard: a 256 x int32 header (magic 20240520, version 1,
/// token count) and then that many uint16 tokens, memory-mapped.
struct TokenFile {
  static constexpr int32_t kMagic = 20240520, kVersion = 1;
  std::string path;
  int64_t count = 0;
  const uint16_t *tokens = nullptr;
  std::shared_ptr<const void> storage;
};

/// Opens a token shard, checking its header and length.
TokenFile readTokens(const std::string &path);

/// Shuffled sample order, one permutation per epoch, the same on every rank.
class Sampler {
public:
  Sampler(int64_t count, uint64_t seed) : count_(count), seed_(seed), order_(count) {}
  /// The sample at position `pos` of the endless stream of epochs.
  int64_t at(int64_t pos);

private:
  int64_t count_, epoch_ = -1;
  uint64_t seed_;
  std::vector<int64_t> order_;
};

/// A deterministic hash of (seed, stream, index): reproducible randomness
/// that does not depend on the mesh or on the order values are drawn.
uint64_t hashIndex(uint64_t seed, const std::string &stream, uint64_t index);
double uniformAt(uint64_t seed, const std::string &stream, uint64_t index);
double normalAt(uint64_t seed, const std::string &stream, uint64_t index);

} // namespace dtlrt

#endif // DTLRT_DATA_H
