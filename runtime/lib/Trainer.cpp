//===- Trainer.cpp - state, the training loop, evaluation and saving ------===//

#include "Trainer.h"

#include "LrSchedule.h"
#include "Preemption.h"

#include "dtlrt/Checkpoint.h"
#include "dtlrt/Data.h"
#include "dtlrt/Init.h"
#include "dtlrt/Watchdog.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace dtlrt {

double readScalar(const void *p, DType t) {
  return t == DType::F64 ? *static_cast<const double *>(p) : *static_cast<const float *>(p);
}

void writeScalar(void *p, DType t, double v) {
  if (t == DType::F64)
    *static_cast<double *>(p) = v;
  else
    *static_cast<float *>(p) = float(v);
}

int Step::resultIndex(Role role) const {
  for (size_t i = 0; i < spec->results.size(); ++i)
    if (spec->results[i].role == role)
      return int(i);
  return -1;
}

double Step::scalarResult(Role role) const {
  int i = resultIndex(role);
  return i < 0 ? 0.0 : readScalar(hostResults[i], spec->results[i].dtype);
}

static int64_t globalBatch(const StepSpec &spec) {
  for (const TensorSpec &t : spec.args)
    if (t.role == Role::Input && !t.globalShape.empty())
      return t.globalShape[0];
  return 1;
}

static bool isScalarRole(Role role) { return role == Role::Lr || role == Role::Step; }

int Trainer::run() {
  if (!setUp())
    return 1;
  if (o_.checkGrads)
    return checkGrads();
  if (!prepareCheckpoints())
    return 1;
  Step &step = bind(p_.trainStep);
  int64_t batch = globalBatch(p_.trainStep);
  using Clock = std::chrono::steady_clock;
  auto intervalStart = Clock::now();
  int64_t intervalSteps = 0, firstStep = position_.step + 1;
  // A pipeline's stages: the time in their schedules and in transfers,
  // after the first step (which makes the communicators, warms the caches).
  double stageSeconds = 0, transferSeconds = 0;
  for (int64_t s = firstStep; s <= o_.steps; ++s) {
    watchdogBeat("starting the step", s);
    auto stepStart = Clock::now();
    int64_t first = position_.samplesSeen;
    auto sampleAt = [&](int64_t row) { return sampler_->at(first + row); };
    train_->fill(ctx_, inputs_, sampleAt);
    if (rank_ == 0 && train_->everyLabelIgnored(sampleAt))
      std::printf("warning: step %lld: every label of the batch is negative (ignored), so its "
                  "loss and gradients are 0\n",
                  (long long)s);
    double lr = scheduledLr(p_, s, o_.steps);
    setScalar(Role::Lr, lr);
    setScalar(Role::Step, double(s));
    double transfersBefore = ctx_.pointToPointSeconds(), stagesBefore = ctx_.stageSeconds();
    call(step);
    if (s > firstStep) {
      stageSeconds += ctx_.stageSeconds() - stagesBefore;
      transferSeconds += ctx_.pointToPointSeconds() - transfersBefore;
    }
    ++intervalSteps;
    position_.step = s;
    position_.samplesSeen += batch;
    double loss = step.scalarResult(Role::Loss), gradNorm = step.scalarResult(Role::GradNorm);
    // The step skipped its update (dtl.grad_scale): both values are the
    // same on every rank, so every rank decides alike.
    bool skipped = !std::isfinite(loss) || !std::isfinite(gradNorm);
    position_.skippedInARow = skipped ? position_.skippedInARow + 1 : 0;
    if (skipped && rank_ == 0) {
      std::printf("step %lld/%lld | loss %g | grad_norm %g | not finite: update skipped (%lld in "
                  "a row, stopping at %lld)\n",
                  (long long)s, (long long)o_.steps, loss, gradNorm,
                  (long long)position_.skippedInARow, (long long)o_.maxSkippedSteps);
      std::fflush(stdout);
    }
    double stepMs = 1e3 * std::chrono::duration<double>(Clock::now() - stepStart).count();
    if (s == firstStep && o_.memory)
      reportMemory(step);
    if (!skipped && (s % o_.logEvery == 0 || s == o_.steps)) {
      double seconds = std::chrono::duration<double>(Clock::now() - intervalStart).count();
      if (rank_ == 0) {
        std::printf("step %lld/%lld | loss %.4f | lr %.2e | grad_norm %.4f | %.1fk samples/s | "
                    "%.2f ms/step | mem %.0f MiB\n",
                    (long long)s, (long long)o_.steps, loss, lr, gradNorm,
                    batch * intervalSteps / seconds / 1e3, 1e3 * seconds / intervalSteps,
                    peakMemoryMiB());
        std::fflush(stdout);
      }
      intervalStart = Clock::now();
      intervalSteps = 0;
    }
    if (metrics_.isOpen())
      metrics_.step(s, loss, lr, gradNorm, stepMs, skipped);
    if (position_.skippedInARow >= o_.maxSkippedSteps) {
      if (rank_ == 0)
        std::fprintf(stderr,
                     "error: %lld updates in a row skipped for a non-finite loss or gradient "
                     "norm (step %lld); stopping. The params are those before the first of "
                     "them; try a lower lr, clip_grad_norm, or check the data\n",
                     (long long)position_.skippedInARow, (long long)s);
      return 1;
    }
    if (eval_ && o_.evalEvery && s % o_.evalEvery == 0 && s != o_.steps)
      evaluate(*eval_, s);
    // Every rank learns of a signal to any rank at the same step.
    int signal = preemptionSignal(), anySignal = 0;
    watchdogBeat("in the agreement on signals after the step");
    MPI_Allreduce(&signal, &anySignal, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    bool due = o_.checkpointEvery > 0 && (s % o_.checkpointEvery == 0 || s == o_.steps);
    if ((due || anySignal) && !checkpoint())
      return 1;
    if (anySignal) {
      if (rank_ == 0)
        std::printf("preempted (signal %d) after step %lld: checkpoint written; continue with "
                    "--resume auto (exit code %d)\n",
                    anySignal, (long long)s, kPreemptedExitCode);
      std::fflush(stdout);
      return kPreemptedExitCode;
    }
  }
  reportBubble(stageSeconds, transferSeconds);
  if (eval_)
    evaluate(*eval_, o_.steps);
  if (!o_.exportPath.empty())
    return exportParams(o_.steps);
  return 0;
}

std::vector<StateTensor> Trainer::stateTensors() {
  std::vector<StateTensor> tensors;
  for (const TensorSpec &t : p_.trainStep.args)
    if (t.role == Role::Param || t.role == Role::OptState)
      tensors.push_back({&t, state_.at(t.name).data()});
  return tensors;
}

ModelIdentity Trainer::identity() {
  return {p_.name, p_.sourceFile, stateSignature(stateTensors()), p_.axisNames, p_.axisSizes};
}

/// Before the first step: resumes (--resume), or checks that a fresh run
/// would not write its checkpoints among an earlier run's. Every rank
/// returns the same answer.
bool Trainer::prepareCheckpoints() {
  std::string error, from = o_.resume == "auto" ? o_.checkpointDir : o_.resume;
  double loadMs = 0;
  bool fresh = o_.resume.empty();
  // A run that only checkpoints when preempted leaves the directory alone
  // until then (the save checks it).
  bool checkpoints = o_.checkpointEvery > 0 || !fresh;
  try {
    if (checkpoints)
      checkCheckpointRoot(o_.checkpointDir);
    std::string latest = checkpoints ? latestCheckpoint(o_.checkpointDir) : "";
    if (fresh && !latest.empty())
      throw DataError(o_.checkpointDir +
                      ": holds checkpoints of an earlier run (latest: " + latest +
                      "); continue it with --resume auto, or name another --checkpoint-dir");
    if (o_.resume == "auto" && latest.empty()) {
      fresh = true;
      if (rank_ == 0)
        std::printf("resume: no checkpoint in %s; starting fresh\n", o_.checkpointDir.c_str());
    }
  } catch (const DataError &e) {
    error = e.what();
  }
  try {
    throwIfAnyRankFailed(error, rank_);
    if (fresh)
      return true;
    auto start = std::chrono::steady_clock::now();
    position_ = loadCheckpoint(from, identity(), stateTensors(), ctx_, rank_);
    loadMs = 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } catch (const DataError &e) {
    if (rank_ == 0)
      std::fprintf(stderr, "error: %s\n", e.what());
    return false;
  }
  for (const StateTensor &t : stateTensors())
    toDevice(state_.at(t.spec->name));
  if (rank_ == 0) {
    int64_t perEpoch = std::max<int64_t>(position_.samplesPerEpoch, 1);
    std::printf("resumed from %s: step %lld, data epoch %lld sample %lld (%.0f ms)\n", from.c_str(),
                (long long)position_.step, (long long)(position_.samplesSeen / perEpoch),
                (long long)(position_.samplesSeen % perEpoch), loadMs);
    if (position_.samplesPerEpoch != train_->count())
      std::printf("warning: the checkpoint's train data had %lld samples per epoch, this run's "
                  "has %lld: the data order differs from the interrupted run's\n",
                  (long long)position_.samplesPerEpoch, (long long)train_->count());
    if (position_.seed != p_.seed)
      std::printf("warning: the checkpoint was trained with seed %lld, this program has %lld\n",
                  (long long)position_.seed, (long long)p_.seed);
    if (position_.totalSteps != o_.steps)
      std::printf("note: the checkpoint's run had %lld steps, this one %lld: the lr schedule "
                  "follows this run's\n",
                  (long long)position_.totalSteps, (long long)o_.steps);
    std::fflush(stdout);
  }
  return true;
}

/// Writes the whole state as step-N under the checkpoint dir. Every rank
/// returns the same answer.
bool Trainer::checkpoint() {
  watchdogBeat("writing a checkpoint");
  for (const StateTensor &t : stateTensors())
    toHost(state_.at(t.spec->name));
  position_.totalSteps = o_.steps;
  position_.samplesPerEpoch = train_->count();
  position_.seed = p_.seed;
  auto start = std::chrono::steady_clock::now();
  try {
    std::string dir = saveCheckpoint(o_.checkpointDir, o_.keepLast, identity(), position_,
                                     stateTensors(), ctx_, rank_);
    double ms =
        1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rank_ == 0) {
      std::printf("checkpoint %s (%.0f ms)\n", dir.c_str(), ms);
      std::fflush(stdout);
    }
  } catch (const DataError &e) {
    if (rank_ == 0)
      std::fprintf(stderr, "error: writing the checkpoint: %s\n", e.what());
    return false;
  }
  return true;
}

/// Data, the metrics file, then params and state. Every rank learns whether
/// all of them succeeded, so a rank that cannot read a file (say, on another
/// node's disk) stops the job instead of leaving the others waiting in a
/// collective.
bool Trainer::setUp() {
  std::string error;
  try {
    train_ = makeFeeder(p_.data, p_.trainStep.args, p_.seed, "train");
    sampler_.emplace(train_->count(), p_.seed);
    if (p_.eval.source != Source::None && !o_.checkGrads && o_.evaluate)
      eval_ = makeFeeder(p_.eval, p_.evalStep.args, p_.seed, "eval");
    if (rank_ == 0 && !o_.metrics.empty())
      metrics_.open(o_.metrics, /*append=*/!o_.resume.empty());
    heapBeforeState_ = heapBytesInUse();
    allocateState();
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

/// Params (initialised) and optimizer state (zeros) by name; inputs and the
/// lr/step scalars too; every step function's arguments point at them.
void Trainer::allocateState() {
  for (const StepSpec *spec : {&p_.trainStep, &p_.evalStep, &p_.gradStep}) {
    if (!spec->fn)
      continue;
    for (const TensorSpec &t : spec->args) {
      Buffer &b = isScalarRole(t.role) ? scalars_[t.role] : state_[t.name];
      size_t bytes = t.localSize() * sizeOf(t.dtype);
      if (!b.bytes.empty()) {
        // Step functions share tensors by name: they must agree on the
        // layout. With gradient accumulation the train step's inputs hold
        // several of the model's batches; evaluation and the gradient check
        // read one, the buffer's first rows.
        bool fewerRows = t.role == Role::Input && b.bytes.size() > bytes;
        if (b.bytes.size() != bytes && !fewerRows)
          throw DataError("internal error: the step functions disagree on the local size of '" +
                          t.name + "'");
        continue;
      }
      b.bytes.assign(bytes, 0);
      if (t.role == Role::Param)
        initParam(t, p_.seed, ctx_, b.data());
      if (t.role == Role::Input)
        inputs_[t.name] = b.data();
      if (device_) {
        b.device = device_->allocate(bytes);
        toDevice(b);
      }
    }
  }
}

void Trainer::toDevice(Buffer &b) {
  if (b.device)
    device_->upload(b.device, b.data(), b.bytes.size());
}

void Trainer::toHost(Buffer &b) {
  if (b.device)
    device_->download(b.data(), b.device, b.bytes.size());
}

void Trainer::setScalar(Role role, double value) {
  auto it = scalars_.find(role);
  if (it != scalars_.end())
    writeScalar(it->second.data(), realType(), value);
}

Step &Trainer::bind(const StepSpec &spec) {
  auto [it, fresh] = steps_.try_emplace(&spec);
  Step &step = it->second;
  if (!fresh)
    return step;
  step.spec = &spec;
  for (const TensorSpec &t : spec.args) {
    Buffer &b = isScalarRole(t.role) ? scalars_[t.role] : state_[t.name];
    step.args.push_back(b.place());
    if (t.role == Role::Input || isScalarRole(t.role))
      step.uploads.push_back(&b);
  }
  step.ownedResults.resize(spec.results.size());
  for (size_t i = 0; i < spec.results.size(); ++i) {
    const TensorSpec &t = spec.results[i];
    // Updated params and state are written over the old ones (the step
    // reads each old element before it writes the new one).
    if (t.role == Role::Param || t.role == Role::OptState) {
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

/// On a device, inputs and scalars go up first and the results that are not
/// params or state come down after.
void Trainer::call(Step &step) {
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

void Trainer::reportBubble(double stageSeconds, double transferSeconds) {
  double longest = 0;
  watchdogBeat("in the report of the pipeline's bubble");
  MPI_Allreduce(&stageSeconds, &longest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (longest <= 0)
    return; // no pipeline, or no step after the first
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  double computing = stageSeconds - transferSeconds;
  std::vector<double> all(size);
  MPI_Gather(&computing, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (rank_ != 0)
    return;
  double busy = 0;
  std::printf("pipeline, measured over the steps after the first: the slowest stage took %.1f "
              "ms; computing:",
              1e3 * longest);
  for (int r = 0; r < size; ++r) {
    std::printf(" rank %d %.1f%%", r, 100 * all[r] / longest);
    busy += all[r] / size;
  }
  std::printf("; bubble (idle) %.1f%%\n", 100 * (1 - busy / longest));
  std::fflush(stdout);
}

/// What this rank allocated (the state by role, the train step's result
/// buffers, the step functions' arenas), and, as a count independent of
/// those figures, how much its heap grew since before the state was
/// allocated (malloc's own count: it also sees allocations none of the
/// figures knows of).
void Trainer::reportMemory(const Step &step) {
  std::map<Role, int64_t> byRole;
  for (const TensorSpec &t : p_.trainStep.args)
    byRole[t.role] += t.localSize() * sizeOf(t.dtype);
  int64_t results = 0;
  for (const Buffer &b : step.ownedResults)
    results += b.bytes.size();
  int64_t state = 0;
  for (auto &[role, bytes] : byRole)
    state += bytes;
  int64_t growth = heapBytesInUse() - heapBeforeState_;
  if (rank_ != 0)
    return;
  std::printf("memory (rank 0, bytes): params %lld | optimizer state %lld | inputs %lld | "
              "step results %lld | step buffers %lld | total %lld | heap growth %lld | "
              "gemm kernels %lld\n",
              (long long)byRole[Role::Param], (long long)byRole[Role::OptState],
              (long long)byRole[Role::Input], (long long)results, (long long)stepBufferBytes(),
              (long long)(state + results + stepBufferBytes()), (long long)growth,
              (long long)gemmKernelBytes());
  if (device_)
    std::printf("device memory (rank 0, bytes): %lld (tensors, step buffers, scratch)\n",
                (long long)device_->allocatedBytes());
  std::fflush(stdout);
}

/// Loss and accuracy over the whole eval source, in global batches padded
/// with ignored examples (label -1) at the end.
void Trainer::evaluate(Feeder &eval, int64_t atStep) {
  Step &step = bind(p_.evalStep);
  int64_t batch = globalBatch(p_.evalStep), n = eval.count();
  if (p_.evalBatches > 0)
    n = std::min(n, p_.evalBatches * batch);
  setScalar(Role::Step, 0.0); // dropout is off
  double lossSum = 0, correct = 0;
  for (int64_t start = 0; start < n; start += batch) {
    eval.fill(ctx_, inputs_, [&](int64_t row) { return start + row < n ? start + row : -1; });
    call(step);
    // The loss is a mean over the batch size, padding included as zeros.
    lossSum += step.scalarResult(Role::Loss) * batch;
    correct += step.scalarResult(Role::Correct);
  }
  bool hasAccuracy = step.resultIndex(Role::Correct) >= 0;
  int64_t labels = n * eval.labelsPerSample();
  if (rank_ != 0)
    return;
  std::printf("eval step %lld | loss %.4f", (long long)atStep, lossSum / n);
  if (hasAccuracy)
    std::printf(" | accuracy %.2f%% (%lld/%lld)", 100.0 * correct / labels, (long long)correct,
                (long long)labels);
  std::printf("\n");
  std::fflush(stdout);
  if (metrics_.isOpen())
    metrics_.eval(atStep, lossSum / n,
                  hasAccuracy ? std::optional<double>(correct / labels) : std::nullopt);
}

/// Writes the params (whole, gathered to rank 0) as one safetensors file.
int Trainer::exportParams(int64_t atStep) {
  watchdogBeat("exporting the params");
  std::vector<SavedTensor> tensors;
  for (const TensorSpec &t : p_.trainStep.args)
    if (t.role == Role::Param) {
      toHost(state_.at(t.name));
      tensors.push_back({&t, state_.at(t.name).data()});
    }
  std::map<std::string, std::string> metadata{{"format", "pt"},
                                              {"step", std::to_string(atStep)},
                                              {"model", p_.name},
                                              {"source", p_.sourceFile},
                                              {"producer", "dtlc"}};
  try {
    std::string error;
    try {
      saveSafetensors(o_.exportPath, tensors, metadata, ctx_, rank_);
    } catch (const DataError &e) {
      error = e.what();
    }
    throwIfAnyRankFailed(error, rank_);
  } catch (const DataError &e) {
    if (rank_ == 0)
      std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  if (rank_ == 0)
    std::printf("exported %zu params to %s (step %lld)\n", tensors.size(), o_.exportPath.c_str(),
                (long long)atStep);
  return 0;
}

} // namespace dtlrt
