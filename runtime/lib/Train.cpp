//===- Train.cpp - the training loop around the generated step functions --===//
//
// Everything a generated program does besides its math: joins the launch,
// checks the world against the mesh, initialises params, feeds each rank its
// part of every global batch, schedules the lr, logs, evaluates, and checks
// gradients against finite differences on request.
//
//===----------------------------------------------------------------------===//

#include "dtlrt/Checkpoint.h"
#include "dtlrt/Context.h"
#include "dtlrt/Data.h"
#include "dtlrt/Device.h"
#include "dtlrt/Init.h"
#include "dtlrt/RankDiscovery.h"

#include <cblas.h>
#include <omp.h>
#if defined(__SSE__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

extern "C" void openblas_set_num_threads(int);
extern "C" char *openblas_get_corename(void);

namespace dtlrt {

size_t sizeOf(DType t) { return t == DType::F64 ? 8 : 4; }

int64_t stepBufferBytesAllocated = 0;
int64_t stepBufferBytes() { return stepBufferBytesAllocated; }

int64_t TensorSpec::localSize() const { return numElements(localShape); }

namespace {

struct Options {
  int64_t steps, logEvery, evalEvery;
  std::string metrics;
  int checkGrads = 0; ///< elements checked per param; 0: train
  bool memory = false; ///< report what each rank allocated, after the first step
  std::string save;    ///< safetensors file for the trained params
  std::vector<std::string> data, evalData; ///< files replacing the train section's
  bool evaluate = true; ///< false after --eval-every 0: no evaluation at all
};

void usage(const Program &p) {
  std::printf("usage: %s [--steps N] [--log-every N] [--eval-every N] [--metrics PATH]\n"
              "          [--save PATH] [--check-grads[=N]] [--memory]\n"
              "Trains the model compiled from %s. Launch with mpirun -np N (N = mesh size).\n"
              "  --steps N          training steps (0: only evaluate and save the init)\n"
              "  --eval-every N     evaluate every N steps and at the end (0: never)\n"
              "  --save PATH        write the trained params as safetensors at the end\n"
              "  --data F[,F]       read the training data from these files instead\n"
              "  --eval-data F[,F]  read the evaluation data from these files instead\n"
              "  --check-grads[=N]  compare N gradient elements per param (default 8)\n"
              "                     with central finite differences, then exit\n"
              "  --memory           after the first step, print what rank 0 allocated\n"
              "                     (compare with dtlc --explain)\n",
              p.name.c_str(), p.sourceFile.c_str());
}

/// Parses the flags; returns false (after a message) on bad ones.
bool parseOptions(const Program &p, int argc, char **argv, Options &o, bool &help) {
  o = Options{p.steps, p.logEvery, p.evalEvery, "", 0};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], value;
    size_t eq = a.find('=');
    std::string key = a.substr(0, eq);
    bool hasValue = eq != std::string::npos;
    if (hasValue)
      value = a.substr(eq + 1);
    auto next = [&]() -> bool {
      if (hasValue)
        return true;
      if (i + 1 >= argc)
        return false;
      value = argv[++i];
      return true;
    };
    auto number = [&](int64_t &out, int64_t min) {
      char *end = nullptr;
      if (!next() || value.empty())
        return false;
      long long n = std::strtoll(value.c_str(), &end, 10);
      if (*end || n < min)
        return false;
      out = n;
      return true;
    };
    bool ok = true;
    if (key == "--help" || key == "-h")
      help = true;
    else if (key == "--steps")
      ok = number(o.steps, 0);
    else if (key == "--log-every")
      ok = number(o.logEvery, 1);
    else if (key == "--eval-every")
      ok = number(o.evalEvery, 0), o.evaluate = o.evalEvery > 0;
    else if (key == "--memory")
      o.memory = true;
    else if (key == "--metrics")
      ok = next() && !value.empty(), o.metrics = value;
    else if (key == "--save")
      ok = next() && !value.empty(), o.save = value;
    else if (key == "--data" || key == "--eval-data") {
      ok = next() && !value.empty();
      std::vector<std::string> &files = key == "--data" ? o.data : o.evalData;
      for (size_t start = 0; ok && start <= value.size();) {
        size_t comma = std::min(value.find(',', start), value.size());
        files.push_back(value.substr(start, comma - start));
        start = comma + 1;
      }
    }
    else if (key == "--check-grads") {
      int64_t n = 8;
      ok = !hasValue || number(n, 1);
      o.checkGrads = (int)n;
    } else {
      std::fprintf(stderr, "error: unknown flag '%s' (see --help)\n", a.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "error: bad value for %s (see --help)\n", key.c_str());
      return false;
    }
  }
  return true;
}

std::string meshString(const Program &p) {
  std::string s = "[";
  for (size_t i = 0; i < p.axisNames.size(); ++i)
    s += (i ? ", " : "") + p.axisNames[i] + ": " + std::to_string(p.axisSizes[i]);
  return s + "]";
}

/// This process's peak resident memory.
double peakMemoryMiB() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0; // KiB on Linux
}

/// Every thread flushes denormals to zero: they cost ~100x in x86 float math
/// and no training run needs them. Threads made later inherit the setting.
void flushDenormals() {
#if defined(__SSE__)
#pragma omp parallel
  {
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
  }
#endif
}

/// One buffer per argument or result of a step function, on the host and,
/// for a program built for an accelerator, mirrored on the device.
struct Buffer {
  std::vector<unsigned char> bytes;
  void *device = nullptr;
  void *data() { return bytes.data(); }
  /// Where step functions see it.
  void *place() { return device ? device : bytes.data(); }
};

double readScalar(const void *p, DType t) {
  return t == DType::F64 ? *static_cast<const double *>(p) : *static_cast<const float *>(p);
}
void writeReal(void *p, DType t, int64_t i, double v) {
  if (t == DType::F64)
    static_cast<double *>(p)[i] = v;
  else
    static_cast<float *>(p)[i] = float(v);
}
void writeScalar(void *p, DType t, double v) { writeReal(p, t, 0, v); }

/// A number for the JSONL metrics, exact when read back; null when it is
/// not finite (JSON has no inf or nan).
std::string jsonNumber(double v, const char *format = "%.17g") {
  if (!std::isfinite(v))
    return "null";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, format, v);
  return buffer;
}

double scheduledLr(const Program &p, int64_t step, int64_t steps) {
  double peak = p.lr;
  if ((p.schedule == "warmup" || p.schedule == "warmup_cosine") && step <= p.warmup)
    return peak * double(step) / double(std::max<int64_t>(p.warmup, 1));
  if (p.schedule == "cosine" || p.schedule == "warmup_cosine") {
    int64_t start = p.schedule == "warmup_cosine" ? p.warmup : 0;
    double progress = double(step - start) / double(std::max<int64_t>(steps - start, 1));
    return p.minLr + 0.5 * (peak - p.minLr) * (1 + std::cos(M_PI * std::min(progress, 1.0)));
  }
  return peak;
}

/// Feeds the inputs of a step from one data source: each rank fills only the
/// elements of the global batch its input sharding gives it.
class Feeder {
public:
  /// `stream` names the synthetic examples drawn ("train", "eval"); their
  /// class centres are shared, so a model trained on one can be evaluated on
  /// the other.
  Feeder(const DataSpec &spec, const std::vector<TensorSpec> &inputs, uint64_t seed,
         const std::string &stream)
      : spec_(spec), seed_(seed), labelStream_(stream + ".label"), noiseStream_(stream + ".noise") {
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      const TensorSpec *t = nullptr;
      for (const TensorSpec &s : inputs)
        if (s.name == spec.inputs[i])
          t = &s;
      if (!t)
        throw DataError("data source feeds '" + spec.inputs[i] + "', which the step has no input for");
      sources_.push_back({t, spec.source == "idx" ? readIdx(spec.files[i])
                                                  : Dataset()});
      Dataset &d = sources_.back().data;
      int64_t rowSize = numElements(t->globalShape, 1);
      if (spec.source == "tokens") {
        // Sample k is the window of tokens [k T, k T + T + 1): the ids are
        // its first T, the targets its last T.
        if (i == 0)
          tokens_ = readTokens(spec.files.at(0));
        window_ = rowSize;
        count_ = (tokens_.count - 1) / window_;
        if (count_ < 1)
          throw DataError(tokens_.path + ": " + std::to_string(tokens_.count) +
                          " tokens, fewer than one window of " + std::to_string(window_ + 1));
      } else if (spec.source == "idx") {
        if (d.sampleSize() != rowSize)
          throw DataError(d.path + ": samples have " + std::to_string(d.sampleSize()) +
                          " values, but input '" + t->name + "' takes " + std::to_string(rowSize) +
                          " per example");
        if (count_ >= 0 && d.count != count_)
          throw DataError(d.path + ": " + std::to_string(d.count) + " samples, but " +
                          sources_.front().data.path + " has " + std::to_string(count_));
        count_ = d.count;
      }
    }
    if (spec.source == "synthetic")
      count_ = spec.size;
  }

  int64_t count() const { return count_; }
  /// Labels per sample: the tokens of a window, else one.
  int64_t labelsPerSample() const { return spec_.source == "tokens" ? window_ : 1; }

  /// Fills the rank's part of the global batch made of samples `sampleAt(row)`
  /// (a negative sample index pads: zeros, label -1).
  template <typename SampleAt>
  void fill(const Context &ctx, std::map<std::string, void *> &buffers, SampleAt sampleAt) {
    for (Source &s : sources_) {
      const TensorSpec &t = *s.spec;
      int64_t rowSize = numElements(t.globalShape, 1);
      void *out = buffers.at(t.name);
      forEachLocal(t, ctx, [&](int64_t local, int64_t global) {
        int64_t row = global / rowSize, col = global % rowSize;
        int64_t sample = sampleAt(row);
        if (spec_.source == "tokens") {
          // Padding: id 0 (a valid row of the table), target -1 (ignored).
          bool targets = &s != &sources_.front();
          static_cast<int32_t *>(out)[local] =
              sample < 0 ? (targets ? -1 : 0)
                         : int32_t(tokens_.tokens[sample * window_ + col + (targets ? 1 : 0)]);
        } else if (t.dtype == DType::I32)
          static_cast<int32_t *>(out)[local] = sample < 0 ? -1 : label(s, sample);
        else
          writeReal(out, t.dtype, local, sample < 0 ? 0.0 : value(s, sample, col, rowSize));
      });
    }
  }

private:
  struct Source {
    const TensorSpec *spec;
    Dataset data;
  };

  int32_t label(const Source &s, int64_t sample) const {
    if (spec_.source == "idx")
      return s.data.label(sample);
    return int32_t(hashIndex(seed_, labelStream_, sample) % spec_.classes);
  }

  // Synthetic examples: a per-class centre plus noise, so a model can learn them.
  double value(const Source &s, int64_t sample, int64_t col, int64_t rowSize) const {
    if (spec_.source == "idx")
      return s.data.value(sample, col);
    int64_t cls = label(s, sample);
    return normalAt(seed_, "synthetic.centre", cls * rowSize + col) +
           0.5 * normalAt(seed_, noiseStream_, sample * rowSize + col);
  }

  const DataSpec &spec_;
  uint64_t seed_;
  std::string labelStream_, noiseStream_;
  int64_t count_ = -1;
  TokenFile tokens_;
  int64_t window_ = 1;
  std::vector<Source> sources_;
};

/// The buffers of one step function, bound by name to the shared state.
struct Step {
  const StepSpec *spec = nullptr;
  std::vector<void *> args, results; ///< where the step function sees them
  std::vector<Buffer> ownedResults;  ///< results that are not params or state
  std::vector<Buffer *> uploads;     ///< inputs and scalars, refreshed before each call
  std::vector<void *> hostResults;   ///< where the results are read on the host
  int resultIndex(const std::string &role) const {
    for (size_t i = 0; i < spec->results.size(); ++i)
      if (spec->results[i].role == role)
        return int(i);
    return -1;
  }
  double scalarResult(const std::string &role) const {
    int i = resultIndex(role);
    return i < 0 ? 0.0 : readScalar(hostResults[i], spec->results[i].dtype);
  }
};

class Trainer {
public:
  Trainer(const Program &p, const Options &o, Context &ctx, int rank)
      : p_(p), o_(o), ctx_(ctx), rank_(rank), device_(p.device) {}

  /// Trains (or checks gradients); returns the exit code. Data errors inside
  /// a step escape as DataError.
  int run() {
    if (!setUp())
      return 1;
    if (o_.checkGrads)
      return checkGrads();
    Step &step = bind(p_.trainStep);
    Sampler sampler(train_->count(), p_.seed);
    int64_t batch = globalBatch(p_.trainStep);
    using Clock = std::chrono::steady_clock;
    auto intervalStart = Clock::now();
    int64_t intervalSteps = 0;
    for (int64_t s = 1; s <= o_.steps; ++s) {
      auto stepStart = Clock::now();
      train_->fill(ctx_, inputs_, [&](int64_t row) { return sampler.at((s - 1) * batch + row); });
      double lr = scheduledLr(p_, s, o_.steps);
      writeScalar(scalars_["lr"].data(), realType(), lr);
      writeScalar(scalars_["step"].data(), realType(), double(s));
      call(step);
      ++intervalSteps;
      double loss = step.scalarResult("loss"), gradNorm = step.scalarResult("grad_norm");
      if (!std::isfinite(loss)) {
        if (rank_ == 0)
          std::fprintf(stderr, "error: the loss is %g at step %lld; stopping (try a lower lr)\n",
                       loss, (long long)s);
        return 1;
      }
      double stepMs = 1e3 * std::chrono::duration<double>(Clock::now() - stepStart).count();
      if (s == 1 && o_.memory)
        reportMemory(step);
      if (s % o_.logEvery == 0 || s == o_.steps) {
        double seconds = std::chrono::duration<double>(Clock::now() - intervalStart).count();
        double msPerStep = 1e3 * seconds / intervalSteps;
        double samplesPerSecond = batch * intervalSteps / seconds;
        if (rank_ == 0) {
          std::printf("step %lld/%lld | loss %.4f | lr %.2e | grad_norm %.4f | %.1fk samples/s | "
                      "%.2f ms/step | mem %.0f MiB\n",
                      (long long)s, (long long)o_.steps, loss, lr, gradNorm,
                      samplesPerSecond / 1e3, msPerStep, peakMemoryMiB());
          std::fflush(stdout);
        }
        intervalStart = Clock::now();
        intervalSteps = 0;
      }
      if (metrics_.is_open())
        metrics_ << "{\"step\": " << s << ", \"loss\": " << jsonNumber(loss)
                 << ", \"lr\": " << jsonNumber(lr) << ", \"grad_norm\": " << jsonNumber(gradNorm)
                 << ", \"ms\": " << jsonNumber(stepMs, "%.4f") << "}\n"
                 << std::flush;
      if (eval_ && o_.evalEvery && s % o_.evalEvery == 0 && s != o_.steps)
        evaluate(*eval_, s);
    }
    if (eval_)
      evaluate(*eval_, o_.steps);
    if (!o_.save.empty())
      return save(o_.steps);
    return 0;
  }

private:
  /// Params, data and the metrics file. Every rank learns whether all of
  /// them succeeded, so a rank that cannot read a file (say, on another
  /// node's disk) stops the job instead of leaving the others waiting in a
  /// collective.
  bool setUp() {
    std::string error;
    try {
      allocateState();
      train_ = std::make_unique<Feeder>(p_.data, p_.trainStep.args, p_.seed, "train");
      if (!p_.eval.source.empty() && !o_.checkGrads && o_.evaluate)
        eval_ = std::make_unique<Feeder>(p_.eval, p_.evalStep.args, p_.seed, "eval");
      if (rank_ == 0 && !o_.metrics.empty()) {
        metrics_.open(o_.metrics);
        if (!metrics_)
          throw DataError(o_.metrics + ": cannot open the metrics file for writing");
      }
    } catch (const DataError &e) {
      error = e.what();
    }
    int failed = !error.empty(), failedRanks = 0, worldSize = 1;
    MPI_Allreduce(&failed, &failedRanks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
    // The same failure everywhere (the usual case: same files) is said once.
    if (failed && (failedRanks < worldSize || rank_ == 0)) {
      if (failedRanks < worldSize)
        std::fprintf(stderr, "error: rank %d: %s\n", rank_, error.c_str());
      else
        std::fprintf(stderr, "error: %s\n", error.c_str());
    }
    return failedRanks == 0;
  }

  DType realType() const { return p_.trainStep.args.front().dtype; }

  static int64_t globalBatch(const StepSpec &spec) {
    for (const TensorSpec &t : spec.args)
      if (t.role == "input" && !t.globalShape.empty())
        return t.globalShape[0];
    return 1;
  }

  /// Params (initialised) and optimizer state (zeros) by name; inputs and the
  /// lr/step scalars by name; every step function's arguments point at them.
  void allocateState() {
    for (const StepSpec *spec : {&p_.trainStep, &p_.evalStep, &p_.gradStep}) {
      if (!spec->fn)
        continue;
      for (const TensorSpec &t : spec->args) {
        Buffer &b = t.role == "lr" || t.role == "step" ? scalars_[t.role] : state_[t.name];
        size_t bytes = t.localSize() * sizeOf(t.dtype);
        if (!b.bytes.empty()) {
          // Step functions share tensors by name: they must agree on the layout.
          if (b.bytes.size() != bytes)
            throw DataError("internal error: the step functions disagree on the local size of '" +
                            t.name + "'");
          continue;
        }
        b.bytes.assign(bytes, 0);
        if (t.role == "param")
          initParam(t, p_.seed, ctx_, b.data());
        if (t.role == "input")
          inputs_[t.name] = b.data();
        if (device_) {
          b.device = device_->allocate(bytes);
          toDevice(b);
        }
      }
    }
  }

  void toDevice(Buffer &b) {
    if (b.device)
      device_->upload(b.device, b.data(), b.bytes.size());
  }
  void toHost(Buffer &b) {
    if (b.device)
      device_->download(b.data(), b.device, b.bytes.size());
  }

  /// The step's buffers, bound once per step function.
  Step &bind(const StepSpec &spec) {
    auto [it, fresh] = steps_.try_emplace(&spec);
    Step &step = it->second;
    if (!fresh)
      return step;
    step.spec = &spec;
    for (const TensorSpec &t : spec.args) {
      Buffer &b = t.role == "lr" || t.role == "step" ? scalars_[t.role] : state_[t.name];
      step.args.push_back(b.place());
      if (t.role == "input" || t.role == "lr" || t.role == "step")
        step.uploads.push_back(&b);
    }
    step.ownedResults.resize(spec.results.size());
    for (size_t i = 0; i < spec.results.size(); ++i) {
      const TensorSpec &t = spec.results[i];
      // Updated params and state are written over the old ones (the step
      // reads each old element before it writes the new one).
      if (t.role == "param" || t.role == "opt_state") {
        Buffer &state = state_.at(t.name);
        if (state.bytes.size() != size_t(t.localSize()) * sizeOf(t.dtype))
          throw DataError("internal error: the updated '" + t.name +
                          "' is laid out unlike the one it replaces");
        step.results.push_back(state.place());
        step.hostResults.push_back(state.data());
        continue;
      }
      Buffer &owned = step.ownedResults[i];
      owned.bytes.assign(std::max<int64_t>(t.localSize(), 1) * sizeOf(t.dtype), 0);
      if (device_)
        owned.device = device_->allocate(owned.bytes.size());
      step.results.push_back(owned.place());
      step.hostResults.push_back(owned.data());
    }
    return step;
  }

  /// Runs a step: on a device, inputs and scalars go up first and the
  /// results that are not params or state come down after.
  void call(Step &step) {
    if (!device_) {
      step.spec->fn(ctx_, step.args.data(), step.results.data());
      return;
    }
    for (Buffer *b : step.uploads)
      toDevice(*b);
    device_->run(step.spec->fn, ctx_, step.args, step.results);
    for (Buffer &b : step.ownedResults)
      toHost(b);
  }

  /// What this rank allocated: the state by role, the train step's result
  /// buffers and the step functions' intermediate buffers, in bytes.
  void reportMemory(const Step &step) {
    std::map<std::string, int64_t> byRole;
    for (const TensorSpec &t : p_.trainStep.args)
      byRole[t.role] += t.localSize() * sizeOf(t.dtype);
    int64_t results = 0;
    for (const Buffer &b : step.ownedResults)
      results += b.bytes.size();
    int64_t state = 0;
    for (auto &[role, bytes] : byRole)
      state += bytes;
    if (rank_ != 0)
      return;
    std::printf("memory (rank 0, bytes): params %lld | optimizer state %lld | inputs %lld | "
                "step results %lld | step buffers %lld | total %lld\n",
                (long long)byRole["param"], (long long)byRole["opt_state"],
                (long long)byRole["input"], (long long)results, (long long)stepBufferBytes(),
                (long long)(state + results + stepBufferBytes()));
    if (device_)
      std::printf("device memory (rank 0, bytes): %lld (tensors, step buffers, scratch)\n",
                  (long long)device_->allocatedBytes());
    std::fflush(stdout);
  }

  /// Loss and accuracy over the whole eval source, in global batches padded
  /// with ignored examples (label -1) at the end.
  void evaluate(Feeder &eval, int64_t atStep) {
    Step &step = bind(p_.evalStep);
    int64_t batch = globalBatch(p_.evalStep), n = eval.count();
    if (p_.evalBatches > 0)
      n = std::min(n, p_.evalBatches * batch);
    // Step 0: dropout is off.
    writeScalar(scalars_["step"].data(), realType(), 0.0);
    double lossSum = 0, correct = 0;
    for (int64_t start = 0; start < n; start += batch) {
      eval.fill(ctx_, inputs_, [&](int64_t row) { return start + row < n ? start + row : -1; });
      call(step);
      // The loss is a mean over the batch size, padding included as zeros.
      lossSum += step.scalarResult("loss") * batch;
      correct += step.scalarResult("correct");
    }
    bool hasAccuracy = step.resultIndex("correct") >= 0;
    int64_t labels = n * eval.labelsPerSample();
    if (rank_ == 0) {
      std::printf("eval step %lld | loss %.4f", (long long)atStep, lossSum / n);
      if (hasAccuracy)
        std::printf(" | accuracy %.2f%% (%lld/%lld)", 100.0 * correct / labels,
                    (long long)correct, (long long)labels);
      std::printf("\n");
      std::fflush(stdout);
      if (metrics_.is_open())
        metrics_ << "{\"eval_step\": " << atStep << ", \"eval_loss\": " << jsonNumber(lossSum / n)
                 << ", \"accuracy\": " << jsonNumber(hasAccuracy ? correct / labels : 0.0)
                 << "}\n"
                 << std::flush;
    }
  }

  /// Writes the params (whole, gathered to rank 0) as safetensors.
  int save(int64_t atStep) {
    std::vector<SavedTensor> tensors;
    for (const TensorSpec &t : p_.trainStep.args)
      if (t.role == "param") {
        toHost(state_.at(t.name));
        tensors.push_back({&t, state_.at(t.name).data()});
      }
    std::map<std::string, std::string> metadata{
        {"format", "pt"}, {"step", std::to_string(atStep)}, {"model", p_.name},
        {"source", p_.sourceFile}, {"producer", "dtlc"}};
    try {
      saveSafetensors(o_.save, tensors, metadata, ctx_, rank_);
    } catch (const DataError &e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
    if (rank_ == 0)
      std::printf("saved %zu params to %s (step %lld)\n", tensors.size(), o_.save.c_str(),
                  (long long)atStep);
    return 0;
  }

  /// Central differences of the forward loss against the gradient function,
  /// on a spread of elements of every param, on the first training batch.
  int checkGrads() {
    if (!p_.gradStep.fn || !p_.evalStep.fn) {
      std::fprintf(stderr, "error: this program was compiled without a gradient function\n");
      return 1;
    }
    Sampler sampler(train_->count(), p_.seed);
    train_->fill(ctx_, inputs_, [&](int64_t row) { return sampler.at(row); });
    Step &grad = bind(p_.gradStep), &forward = bind(p_.evalStep);
    // Step 1: dropout draws its (fixed) mask, so its gradient is checked too.
    writeScalar(scalars_["step"].data(), realType(), 1.0);
    call(grad);
    bool f64 = realType() == DType::F64;
    double h = f64 ? 1e-6 : 1e-2, tolerance = f64 ? 1e-5 : 5e-2;
    bool allOk = true;
    for (size_t r = 0; r < p_.gradStep.results.size(); ++r) {
      const TensorSpec &g = p_.gradStep.results[r];
      if (g.role != "grad")
        continue;
      const TensorSpec *param = nullptr;
      for (const TensorSpec &t : p_.gradStep.args)
        if (t.name == g.name)
          param = &t;
      int64_t total = numElements(param->globalShape);
      double worst = 0;
      int checked = 0;
      for (int k = 0; k < o_.checkGrads && k < total; ++k) {
        int64_t element = int64_t(hashIndex(p_.seed, g.name + ".check", k) % total);
        // Every rank holding the element perturbs it; its analytic gradient is
        // averaged over the holders (they agree) so rank 0 sees it too.
        double analytic[2] = {0, 0};
        Buffer &paramBuffer = state_.at(param->name);
        void *values = paramBuffer.data();
        std::vector<int64_t> held;
        forEachLocal(*param, ctx_, [&](int64_t local, int64_t global) {
          if (global != element)
            return;
          held.push_back(local);
          analytic[0] += readScalar(static_cast<char *>(grad.hostResults[r]) + local * sizeOf(g.dtype),
                                    g.dtype);
          analytic[1] += 1;
        });
        MPI_Allreduce(MPI_IN_PLACE, analytic, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        double exact = analytic[0] / analytic[1];
        auto lossWith = [&](double delta) {
          std::vector<double> saved;
          for (int64_t local : held) {
            char *p = static_cast<char *>(values) + local * sizeOf(param->dtype);
            saved.push_back(readScalar(p, param->dtype));
            writeScalar(p, param->dtype, saved.back() + delta);
          }
          toDevice(paramBuffer);
          call(forward);
          for (size_t i = 0; i < held.size(); ++i)
            writeScalar(static_cast<char *>(values) + held[i] * sizeOf(param->dtype),
                        param->dtype, saved[i]);
          toDevice(paramBuffer);
          return forward.scalarResult("loss");
        };
        double numeric = (lossWith(h) - lossWith(-h)) / (2 * h);
        double error = std::fabs(exact - numeric) / std::max(std::fabs(exact) + std::fabs(numeric), 1e-3);
        worst = std::max(worst, error);
        ++checked;
      }
      bool ok = worst <= tolerance;
      allOk &= ok;
      if (rank_ == 0)
        std::printf("gradcheck %s: %d elements, max relative error %.3e (tolerance %.0e) %s\n",
                    g.name.c_str(), checked, worst, tolerance, ok ? "ok" : "FAILED");
    }
    return allOk ? 0 : 1;
  }

  const Program &p_;
  const Options &o_;
  Context &ctx_;
  int rank_;
  std::map<std::string, Buffer> state_, scalars_;
  std::map<std::string, void *> inputs_;
  std::map<const StepSpec *, Step> steps_;
  std::unique_ptr<Feeder> train_, eval_;
  Device *device_;
  std::ofstream metrics_;
};

/// OpenBLAS 0.3.21 falls back to its generic Prescott kernels on CPUs newer
/// than it knows (about 3x slower GEMM on an AVX-512 Xeon), and reads its
/// core choice only when it is loaded, before main. So when that happened
/// and the CPU has AVX-512 (or AVX2), run this program again with the
/// nearest core it knows named in OPENBLAS_CORETYPE. Before MPI_Init, so the
/// launcher sees the same process; a user's OPENBLAS_CORETYPE is respected.
void reexecWithKnownBlasCore(char **argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::strcmp(openblas_get_corename(), "Prescott") != 0)
    return;
  const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                       : nullptr;
  if (!core)
    return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  execv("/proc/self/exe", argv); // returns only on failure: go on as we are
}

/// Threads per rank: the machine's cores shared among the ranks on it,
/// unless OMP_NUM_THREADS says otherwise.
int threadsPerRank(const LaunchInfo &launch) {
  if (const char *env = std::getenv("OMP_NUM_THREADS"))
    if (int n = std::atoi(env); n > 0)
      return n;
  int cores = int(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, launch.localSize));
}

} // namespace

int run(const Program &program, int argc, char **argv) {
  Options options;
  bool help = false;
  if (!parseOptions(program, argc, argv, options, help))
    return 2;
  if (help) {
    usage(program);
    return 0;
  }
  reexecWithKnownBlasCore(argv);
  Program p = program;
  for (auto [files, source] : {std::pair(&options.data, &p.data), std::pair(&options.evalData, &p.eval)})
    if (!files->empty()) {
      if (files->size() != source->files.size()) {
        std::fprintf(stderr, "error: %s takes %zu file%s (as many as the train section names)\n",
                     source == &p.data ? "--data" : "--eval-data", source->files.size(),
                     source->files.size() == 1 ? "" : "s");
        return 2;
      }
      source->files = *files;
    }
  LaunchInfo launch = discoverLaunch([](const char *name) { return std::getenv(name); });
  int threads = threadsPerRank(launch);
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  flushDenormals();

  MPI_Init(&argc, &argv);
  int worldSize = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int meshSize = 1;
  for (int s : program.axisSizes)
    meshSize *= s;
  int exitCode = 0;
  if (launch.worldSize != worldSize) {
    if (rank == 0)
      std::fprintf(stderr,
                   "error: the %s launcher says %d processes, but MPI sees %d; this build "
                   "joins ranks through MPI, so launch it with mpirun or srun\n",
                   launch.launcher.c_str(), launch.worldSize, worldSize);
    exitCode = 1;
  } else if (worldSize != meshSize) {
    if (rank == 0)
      std::fprintf(stderr,
                   "error: the mesh %s of %s needs %d processes, but %d %s launched; run "
                   "`mpirun -np %d %s` or recompile with `dtlc --mesh ...`\n",
                   meshString(program).c_str(), program.sourceFile.c_str(), meshSize, worldSize,
                   worldSize == 1 ? "was" : "were", meshSize, argv[0]);
    exitCode = 1;
  }
  if (exitCode) {
    MPI_Finalize();
    return exitCode;
  }
  {
    Context ctx(program.axisSizes, rank);
    if (p.device) {
      // Every rank learns whether all found their device, so none waits alone.
      std::string error = p.device->setUp(launch, ctx, rank);
      int failed = !error.empty(), anyFailed = 0;
      MPI_Allreduce(&failed, &anyFailed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      if (failed)
        std::fprintf(stderr, "error: rank %d: %s\n", rank, error.c_str());
      if (anyFailed) {
        MPI_Finalize();
        return 1;
      }
    }
    if (rank == 0 && !options.checkGrads) {
      std::string where = p.device ? p.device->describe() + " per rank"
                                   : std::to_string(threads) + " thread" +
                                         (threads == 1 ? "" : "s") + " per rank";
      std::printf("%s: %d rank%s on mesh %s (launcher: %s), %s, %lld steps\n",
                  program.name.c_str(), worldSize, worldSize == 1 ? "" : "s",
                  meshString(program).c_str(), launch.launcher.c_str(), where.c_str(),
                  (long long)options.steps);
      std::fflush(stdout);
    }
    try {
      exitCode = Trainer(p, options, ctx, rank).run();
    } catch (const DataError &e) {
      // Inside a step: other ranks may be waiting in a collective for this
      // one, so abort them all rather than hang.
      std::fprintf(stderr, "error: rank %d: %s\n", rank, e.what());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  MPI_Finalize();
  return exitCode;
}

} // namespace dtlrt
