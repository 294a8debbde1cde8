//===- Feeders.h - each rank's part of every global batch -------*- C++ -*-===//
//
// One class per data source, chosen once when the program starts: IDX files,
// llm.c token shards, or synthetic examples. Each rank fills only the
// elements of the global batch its input sharding gives it.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_FEEDERS_H
#define DTLRT_FEEDERS_H

#include "dtlrt/Context.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dtlrt {

class Feeder {
public:
  virtual ~Feeder() = default;
  /// Samples in the source.
  int64_t count() const { return count_; }
  /// Labels per sample (the tokens of a window; else one), for accuracy.
  virtual int64_t labelsPerSample() const { return 1; }
  /// Fills this rank's part of the global batch whose row r is sample
  /// `sampleAt(r)` (negative: padding, whose labels are ignored) into
  /// `buffers`, by input name.
  void fill(const Context &ctx, std::map<std::string, void *> &buffers,
            const std::function<int64_t(int64_t)> &sampleAt) const;
  /// Whether every class label of that global batch is ignored (negative):
  /// its loss and gradients are 0, which the trainer warns about.
  bool everyLabelIgnored(const std::function<int64_t(int64_t)> &sampleAt) const;

protected:
  /// `inputs` are the step's arguments, of which those the source feeds are
  /// looked up by name.
  Feeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs);
  /// Writes element `col` of sample `sample` (< 0: padding) of input
  /// `input` at `out[local]`.
  virtual void element(size_t input, const TensorSpec &t, void *out, int64_t local, int64_t sample,
                       int64_t col) const = 0;

  std::vector<const TensorSpec *> inputs_;
  int64_t count_ = 0;
};

/// The feeder of `spec`'s source. `stream` names the synthetic examples drawn
/// ("train", "eval"); their class centres are shared, so a model trained on
/// one can be evaluated on the other. Throws DataError on a bad file.
std::unique_ptr<Feeder> makeFeeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs,
                                   uint64_t seed, const std::string &stream);

} // namespace dtlrt

#endif // DTLRT_FEEDERS_H
