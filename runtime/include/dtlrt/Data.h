//===- Data.h - datasets: IDX files (gzip too) and synthetic data -*- C++ -*-===//

#ifndef DTLRT_DATA_H
#define DTLRT_DATA_H

#include "dtlrt/Runtime.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dtlrt {

/// A user-facing data problem: the message names the file and what is wrong.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// All samples of one IDX file, as f32 (u8 scaled to [0, 1]) or as i32 labels.
struct Dataset {
  std::string path;
  int64_t count = 0;
  std::vector<int64_t> sampleShape;
  std::vector<float> values;
  std::vector<int32_t> labels;
  int64_t sampleSize() const;
};

/// Reads an IDX file (MNIST family; gzip-compressed or not). `asLabels` keeps
/// integer values as i32; otherwise u8 pixels become value / 255.
Dataset readIdx(const std::string &path, bool asLabels);

/// Shuffled sample order, one permutation per epoch, the same on every rank.
class Sampler {
public:
  Sampler(int64_t count, uint64_t seed) : count_(count), seed_(seed) {}
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
