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
  int checkGrads = 0;  ///< elements checked per param; 0: train
  bool memory = false; ///< report what each rank allocated, after the first step
  std::string save;    ///< safetensors file for the trained params
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
