//===- Trainer.h - one rank's training state and loop -----------*- C++ -*-===//
//
// Owns the buffers of every tensor a step function reads or writes (params
// and optimizer state by name, inputs, the lr and step scalars), binds them
// to each step function once, and runs the loop, evaluation, checkpoints and the
// gradient check (GradCheck.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_TRAINER_H
#define DTLRT_TRAINER_H

#include "Feeders.h"
#include "Metrics.h"
#include "Options.h"

#include "dtlrt/Context.h"
#include "dtlrt/Data.h"
#include "dtlrt/Device.h"
#include "dtlrt/ShardedCheckpoint.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dtlrt {

/// One buffer per argument or result of a step function, on the host and,
/// for a program built for an accelerator, mirrored on the device.
struct Buffer {
  std::vector<unsigned char> bytes;
  void *device = nullptr;
  void *data() { return bytes.data(); }
  /// Where step functions see it.
  void *place() { return device ? device : bytes.data(); }
};

/// The buffers of one step function, bound to the shared state.
struct Step {
  const StepSpec *spec = nullptr;
  std::vector<void *> args, results; ///< where the step function sees them
  std::vector<Buffer> ownedResults;  ///< results that are not params or state
  std::vector<Buffer *> uploads;     ///< inputs and scalars, refreshed before each call
  std::vector<void *> hostResults;   ///< where the results are read on the host
  int resultIndex(Role role) const;
  /// The scalar result of `role` (0 when the step has none).
  double scalarResult(Role role) const;
};

class Trainer {
public:
  Trainer(const Program &p, const Options &o, Context &ctx, int rank)
      : p_(p), o_(o), ctx_(ctx), rank_(rank), device_(p.device) {}

  /// Trains (or checks gradients); returns the exit code. Data errors inside
  /// a step escape as DataError.
  int run();

private:
  bool setUp();
  void allocateState();
  Step &bind(const StepSpec &spec);
  void call(Step &step);
  void toDevice(Buffer &b);
  void toHost(Buffer &b);
  DType realType() const { return p_.trainStep.args.front().dtype; }
  void setScalar(Role role, double value);
  void evaluate(Feeder &eval, int64_t atStep);
  bool prepareCheckpoints();
  bool checkpoint();
  std::vector<StateTensor> stateTensors();
  ModelIdentity identity();
  int exportParams(int64_t atStep);
  void reportMemory(const Step &step);
  /// For a pipeline: the share of the stages' time not computing (in sends
  /// and receives, or done before the slowest stage): the bubble, measured.
  void reportBubble(double stageSeconds, double transferSeconds);
  int checkGrads();

  const Program &p_;
  const Options &o_;
  Context &ctx_;
  int rank_;
  Device *device_;
  std::map<std::string, Buffer> state_; ///< params, optimizer state, inputs by name
  std::map<Role, Buffer> scalars_;      ///< lr, step
  std::map<std::string, void *> inputs_;
  std::map<const StepSpec *, Step> steps_;
  std::unique_ptr<Feeder> train_, eval_;
  std::optional<Sampler> sampler_; ///< the train source's epochs
  Metrics metrics_;
  int64_t heapBeforeState_ = 0;
  TrainPosition position_; ///< steps done and samples drawn (a resumed run's start)
};

double readScalar(const void *p, DType t);
void writeScalar(void *p, DType t, double v);

} // namespace dtlrt

#endif // DTLRT_TRAINER_H
