//===- Feeders.cpp - IDX, token-shard and synthetic feeders ---------------===//

#include "Feeders.h"

#include "dtlrt/Data.h"
#include "dtlrt/Init.h"

namespace dtlrt {

namespace {

void writeReal(void *p, DType t, int64_t i, double v) {
  if (t == DType::F64)
    static_cast<double *>(p)[i] = v;
  else
    static_cast<float *>(p)[i] = float(v);
}

/// One IDX file per input: images as reals, labels as class indices.
class IdxFeeder final : public Feeder {
public:
  IdxFeeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs) : Feeder(spec, inputs) {
    count_ = -1;
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const TensorSpec &t = *inputs_[i];
      Dataset d = readIdx(spec.files.at(i));
      int64_t rowSize = numElements(t.globalShape, 1);
      if (d.sampleSize() != rowSize)
        throw DataError(d.path + ": samples have " + std::to_string(d.sampleSize()) +
                        " values, but input '" + t.name + "' takes " + std::to_string(rowSize) +
                        " per example");
      if (count_ >= 0 && d.count != count_)
        throw DataError(d.path + ": " + std::to_string(d.count) + " samples, but " +
                        files_.front().path + " has " + std::to_string(count_));
      count_ = d.count;
      // Labels checked now, not when their batch comes up thousands of
      // steps later. A negative class label is an ignored example.
      if (t.dtype == DType::I32 && t.bound > 0 && rowSize == 1)
        for (int64_t sample = 0; sample < d.count; ++sample)
          if (int32_t label = d.label(sample); (label < 0 && !t.ignorable) || label >= t.bound)
            throw DataError(d.path + ": sample " + std::to_string(sample) + " is " +
                            std::to_string(label) + ", but input '" + t.name +
                            "' takes values from 0 to " + std::to_string(t.bound - 1) +
                            (t.ignorable ? " (the model's classes; negative: ignored)"
                                         : " (the model's classes)"));
      files_.push_back(std::move(d));
    }
  }

private:
  void element(size_t input, const TensorSpec &t, void *out, int64_t local, int64_t sample,
               int64_t col) const override {
    const Dataset &d = files_[input];
    if (t.dtype == DType::I32)
      static_cast<int32_t *>(out)[local] = sample < 0 ? -1 : d.label(sample);
    else
      writeReal(out, t.dtype, local, sample < 0 ? 0.0 : d.value(sample, col));
  }

  std::vector<Dataset> files_;
};

/// An llm.c token shard: sample k is the window of tokens [k T, k T + T + 1);
/// the ids are its first T, the targets its last T.
class TokenFeeder final : public Feeder {
public:
  TokenFeeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs)
      : Feeder(spec, inputs), tokens_(readTokens(spec.files.at(0))) {
    window_ = numElements(inputs_.front()->globalShape, 1);
    count_ = (tokens_.count - 1) / window_;
    if (count_ < 1)
      throw DataError(tokens_.path + ": " + std::to_string(tokens_.count) +
                      " tokens, fewer than one window of " + std::to_string(window_ + 1));
    // Token ids index the embedding table and label the cross-entropy:
    // checked against both now, not when their batch comes up.
    for (const TensorSpec *t : inputs_) {
      if (t->bound <= 0)
        continue;
      for (int64_t k = 0; k < tokens_.count; ++k)
        if (tokens_.tokens[k] >= t->bound)
          throw DataError(tokens_.path + ": token " + std::to_string(k) + " is " +
                          std::to_string(tokens_.tokens[k]) + ", but input '" + t->name +
                          "' takes ids from 0 to " + std::to_string(t->bound - 1) +
                          " (the model's vocabulary)");
    }
  }
  int64_t labelsPerSample() const override { return window_; }

private:
  void element(size_t input, const TensorSpec &, void *out, int64_t local, int64_t sample,
               int64_t col) const override {
    // Padding: id 0 (a valid row of the table), target -1 (ignored).
    bool targets = input > 0;
    static_cast<int32_t *>(out)[local] =
        sample < 0 ? (targets ? -1 : 0)
                   : int32_t(tokens_.tokens[sample * window_ + col + (targets ? 1 : 0)]);
  }

  TokenFile tokens_;
  int64_t window_ = 1;
};

/// Examples of `classes` classes: a per-class centre plus noise, so a model
/// can learn them.
class SyntheticFeeder final : public Feeder {
public:
  SyntheticFeeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs, uint64_t seed,
                  const std::string &stream)
      : Feeder(spec, inputs), classes_(spec.classes), seed_(seed), labelStream_(stream + ".label"),
        noiseStream_(stream + ".noise") {
    count_ = spec.size;
  }

private:
  int32_t label(int64_t sample) const {
    return int32_t(hashIndex(seed_, labelStream_, sample) % classes_);
  }

  void element(size_t, const TensorSpec &t, void *out, int64_t local, int64_t sample,
               int64_t col) const override {
    if (t.dtype == DType::I32) {
      static_cast<int32_t *>(out)[local] = sample < 0 ? -1 : label(sample);
      return;
    }
    int64_t rowSize = numElements(t.globalShape, 1);
    double v = sample < 0 ? 0.0
                          : normalAt(seed_, "synthetic.centre", label(sample) * rowSize + col) +
                                0.5 * normalAt(seed_, noiseStream_, sample * rowSize + col);
    writeReal(out, t.dtype, local, v);
  }

  int64_t classes_;
  uint64_t seed_;
  std::string labelStream_, noiseStream_;
};

} // namespace

Feeder::Feeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs) {
  for (const std::string &name : spec.inputs) {
    const TensorSpec *found = nullptr;
    for (const TensorSpec &t : inputs)
      if (t.name == name)
        found = &t;
    if (!found)
      throw DataError("data source feeds '" + name + "', which the step has no input for");
    inputs_.push_back(found);
  }
}

void Feeder::fill(const Context &ctx, std::map<std::string, void *> &buffers,
                  const std::function<int64_t(int64_t)> &sampleAt) const {
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const TensorSpec &t = *inputs_[i];
    int64_t rowSize = numElements(t.globalShape, 1);
    void *out = buffers.at(t.name);
    forEachLocal(t, ctx, [&](int64_t local, int64_t global) {
      element(i, t, out, local, sampleAt(global / rowSize), global % rowSize);
    });
  }
}

bool Feeder::everyLabelIgnored(const std::function<int64_t(int64_t)> &sampleAt) const {
  bool labelled = false;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const TensorSpec &t = *inputs_[i];
    if (!t.ignorable)
      continue;
    labelled = true;
    int64_t rowSize = numElements(t.globalShape, 1), total = numElements(t.globalShape, 0);
    for (int64_t global = 0; global < total; ++global) {
      int32_t label;
      element(i, t, &label, 0, sampleAt(global / rowSize), global % rowSize);
      if (label >= 0)
        return false;
    }
  }
  return labelled;
}

std::unique_ptr<Feeder> makeFeeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs,
                                   uint64_t seed, const std::string &stream) {
  switch (spec.source) {
  case Source::Idx:
    return std::make_unique<IdxFeeder>(spec, inputs);
  case Source::Tokens:
    return std::make_unique<TokenFeeder>(spec, inputs);
  case Source::Synthetic:
    return std::make_unique<SyntheticFeeder>(spec, inputs, seed, stream);
  case Source::None:
    break;
  }
  throw DataError("the program has no data source");
}

} // namespace dtlrt
