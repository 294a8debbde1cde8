//===- Options.cpp - a generated program's command line -------------------===//

#include "Options.h"

#include <cstdio>
#include <cstdlib>

namespace dtlrt {

void usage(const Program &p) {
  std::printf("usage: %s [--steps N] [--log-every N] [--eval-every N] [--metrics PATH]\n"
              "          [--save PATH] [--check-grads[=N]] [--memory]\n"
              "Trains the model compiled from %s. Launch with mpirun -np N (N = mesh size).\n"
              "  --steps N          training steps (0: only evaluate and save the init)\n"
              "  --eval-every N     evaluate every N steps and at the end (0: never)\n"
              "  --metrics PATH     one JSON object per step and per evaluation\n"
              "  --save PATH        write the trained params as safetensors at the end\n"
              "  --data F[,F]       read the training data from these files instead\n"
              "  --eval-data F[,F]  read the evaluation data from these files instead\n"
              "  --check-grads[=N]  compare N gradient elements per param (default 8)\n"
              "                     with central finite differences, then exit\n"
              "  --memory           after the first step, print what rank 0 allocated\n"
              "                     and how much its resident memory grew (compare with\n"
              "                     dtlc --explain)\n",
              p.name.c_str(), p.sourceFile.c_str());
}

bool parseOptions(const Program &p, int argc, char **argv, Options &o) {
  o = Options();
  o.steps = p.steps;
  o.logEvery = p.logEvery;
  o.evalEvery = p.evalEvery;
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
    } else if (key == "--save") {
      ok = next() && !value.empty();
      o.save = value;
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
