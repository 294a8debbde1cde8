//===- Options.h - a generated program's command line -----------*- C++ -*-===//

#ifndef DTLRT_OPTIONS_H
#define DTLRT_OPTIONS_H

#include "dtlrt/Runtime.h"

#include <string>
#include <vector>

namespace dtlrt {

struct Options {
  int64_t steps = 0, logEvery = 1, evalEvery = 0;
  std::string metrics;
  int checkGrads = 0;     ///< elements checked per param; 0: train
  bool memory = false;    ///< report what each rank allocated, after the first step
  std::string exportPath; ///< one gathered safetensors file of the trained params
  /// Checkpoints (the train section's settings unless given): every N steps
  /// (0: only when preempted), the newest K kept (0: all), under this directory.
  int64_t checkpointEvery = 0, keepLast = 3, maxSkippedSteps = 10;
  std::string checkpointDir;
  std::string resume; ///< a checkpoint (step-N, or a root's latest), "auto", or "" (none)
  std::vector<std::string> data, evalData; ///< files replacing the train section's
  bool evaluate = true;                    ///< false after --eval-every 0: no evaluation at all
  bool help = false;
};

/// Parses the flags over the train section's defaults; false (after a
/// message on stderr) on a bad one.
bool parseOptions(const Program &p, int argc, char **argv, Options &o);

/// Prints --help.
void usage(const Program &p);

} // namespace dtlrt

#endif // DTLRT_OPTIONS_H
