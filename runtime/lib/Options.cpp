//===- Options.cpp - a generated program's command line -------------------===//

#include "Options.h"
#include "Preemption.h"

#include "dtlrt/Watchdog.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace dtlrt {

void usage(const Program &p) {
  std::printf("usage: %s [--steps N] [--log-every N] [--eval-every N] [--metrics PATH]\n"
              "          [--checkpoint-every N] [--keep-last K] [--checkpoint-dir DIR]\n"
              "          [--resume DIR|auto] [--export PATH] [--max-skipped-steps N]\n"
              "          [--check-grads[=N]] [--memory]\n"
              "Trains the model compiled from %s. Launch with mpirun -np N (N = mesh size).\n"
              "  --steps N              training steps (0: only evaluate and export the init)\n"
              "  --eval-every N         evaluate every N steps and at the end (0: never)\n"
              "  --metrics PATH         one JSON object per step and per evaluation\n"
              "  --checkpoint-every N   write the whole training state every N steps and at\n"
              "                         the end (0: only when preempted; default %lld)\n"
              "  --keep-last K          keep the newest K checkpoints (0: all; default %lld)\n"
              "  --checkpoint-dir DIR   where checkpoints go (default %s)\n"
              "  --resume DIR|auto      continue from a checkpoint (a step-N directory, or a\n"
              "                         checkpoint dir's latest); auto: the checkpoint dir's\n"
              "                         latest, or a fresh start when it has none. Any mesh.\n"
              "  --export PATH          write the trained params whole as one safetensors file\n"
              "  --max-skipped-steps N  stop after N updates in a row skipped for a non-finite\n"
              "                         loss or gradient norm (default %lld)\n"
              "  --data F[,F]           read the training data from these files instead\n"
              "  --eval-data F[,F]      read the evaluation data from these files instead\n"
              "  --check-grads[=N]      compare N gradient elements per param (default 8)\n"
              "                         with central finite differences, then exit\n"
              "  --memory               after the first step, print what rank 0 allocated\n"
              "                         and how much its resident memory grew (compare with\n"
              "                         dtlc --explain)\n"
              "SIGTERM or SIGUSR1 (to every rank, or SIGUSR1 to mpirun) finishes the step,\n"
              "writes a checkpoint and exits with %d; a second signal exits at once.\n"
              "DTL_TIMEOUT=S (default %d s): a step or collective that makes no progress for\n"
              "S seconds on any rank ends the job, naming the rank that stopped answering.\n",
              p.name.c_str(), p.sourceFile.c_str(), (long long)p.checkpointEvery,
              (long long)p.keepLast, p.checkpointDir.c_str(), (long long)p.maxSkippedSteps,
              kPreemptedExitCode, kDefaultTimeoutSeconds);
}

bool parseOptions(const Program &p, int argc, char **argv, Options &o) {
  o = Options();
  o.steps = p.steps;
  o.logEvery = p.logEvery;
  o.evalEvery = p.evalEvery;
  o.checkpointEvery = p.checkpointEvery;
  o.keepLast = p.keepLast;
  o.checkpointDir = p.checkpointDir;
  o.maxSkippedSteps = p.maxSkippedSteps;
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
      errno = 0;
      long long n = std::strtoll(value.c_str(), &end, 10);
      if (*end || errno == ERANGE || n < min)
        return false;
      out = n;
      return true;
    };
    auto files = [&](std::vector<std::string> &out) {
      if (!next() || value.empty())
        return false;
      for (size_t start = 0; start <= value.size();) {
        size_t comma = std::min(value.find(',', start), value.size());
        out.push_back(value.substr(start, comma - start));
        start = comma + 1;
      }
      return true;
    };
    bool ok = true;
    if (key == "--help" || key == "-h") {
      o.help = true;
    } else if (key == "--steps") {
      ok = number(o.steps, 0);
    } else if (key == "--log-every") {
      ok = number(o.logEvery, 1);
    } else if (key == "--eval-every") {
      ok = number(o.evalEvery, 0);
      o.evaluate = o.evalEvery > 0;
    } else if (key == "--memory") {
      o.memory = true;
    } else if (key == "--metrics") {
      ok = next() && !value.empty();
      o.metrics = value;
    } else if (key == "--export") {
      ok = next() && !value.empty();
      o.exportPath = value;
    } else if (key == "--checkpoint-every") {
      ok = number(o.checkpointEvery, 0);
    } else if (key == "--keep-last") {
      ok = number(o.keepLast, 0);
    } else if (key == "--max-skipped-steps") {
      ok = number(o.maxSkippedSteps, 1);
    } else if (key == "--checkpoint-dir") {
      ok = next() && !value.empty();
      o.checkpointDir = value;
    } else if (key == "--resume") {
      ok = next() && !value.empty();
      o.resume = value;
    } else if (key == "--data") {
      ok = files(o.data);
    } else if (key == "--eval-data") {
      ok = files(o.evalData);
    } else if (key == "--check-grads") {
      int64_t n = 8;
      ok = !hasValue || number(n, 1);
      o.checkGrads = int(n);
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

} // namespace dtlrt
