//===- Trainer.cpp - state, the training loop, evaluation and saving ------===//

#include "Trainer.h"

#include "LrSchedule.h"

#include "dtlrt/Checkpoint.h"
#include "dtlrt/Data.h"
#include "dtlrt/Init.h"

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
  Step &step = bind(p_.trainStep);
  int64_t batch = globalBatch(p_.trainStep);
  using Clock = std::chrono::steady_clock;
  auto intervalStart = Clock::now();
  int64_t intervalSteps = 0;
  for (int64_t s = 1; s <= o_.steps; ++s) {
    auto stepStart = Clock::now();
    train_->fill(ctx_, inputs_, [&](int64_t row) { return sampler_->at((s - 1) * batch + row); });
    double lr = scheduledLr(p_, s, o_.steps);
    setScalar(Role::Lr, lr);
    setScalar(Role::Step, double(s));
    call(step);
    ++intervalSteps;
    double loss = step.scalarResult(Role::Loss), gradNorm = step.scalarResult(Role::GradNorm);
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
      metrics_.step(s, loss, lr, gradNorm, stepMs);
    if (eval_ && o_.evalEvery && s % o_.evalEvery == 0 && s != o_.steps)
      evaluate(*eval_, s);
  }
  if (eval_)
    evaluate(*eval_, o_.steps);
  if (!o_.save.empty())
    return save(o_.steps);
  return 0;
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
      metrics_.open(o_.metrics);
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
        // Step functions share tensors by name: they must agree on the layout.
        if (b.bytes.size() != bytes)
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
              "step results %lld | step buffers %lld | total %lld | heap growth %lld\n",
              (long long)byRole[Role::Param], (long long)byRole[Role::OptState],
              (long long)byRole[Role::Input], (long long)results, (long long)stepBufferBytes(),
              (long long)(state + results + stepBufferBytes()), (long long)growth);
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

/// Writes the params (whole, gathered to rank 0) as safetensors.
int Trainer::save(int64_t atStep) {
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

} // namespace dtlrt
