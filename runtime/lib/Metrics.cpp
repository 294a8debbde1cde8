//===- Metrics.cpp - JSONL metrics and memory readings --------------------===//

#include "Metrics.h"

#include "dtlrt/Data.h"

#include <nlohmann/json.hpp>

#include <malloc.h>
#include <sys/resource.h>

#include <cstdio>

namespace dtlrt {

void Metrics::open(const std::string &path, bool append) {
  out_.open(path, std::ios::out | (append ? std::ios::app : std::ios::trunc));
  if (!out_)
    throw DataError(path + ": cannot open the metrics file for writing");
}

void Metrics::step(int64_t step, double loss, double lr, double gradNorm, double ms, bool skipped) {
  nlohmann::ordered_json line{
      {"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gradNorm}, {"ms", ms}};
  if (skipped)
    line["skipped"] = true;
  out_ << line.dump() << "\n" << std::flush;
}

void Metrics::eval(int64_t step, double loss, std::optional<double> accuracy) {
  nlohmann::ordered_json line{{"eval_step", step}, {"eval_loss", loss}};
  if (accuracy)
    line["accuracy"] = *accuracy;
  out_ << line.dump() << "\n" << std::flush;
}

double peakMemoryMiB() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0; // KiB on Linux
}

int64_t heapBytesInUse() {
  struct mallinfo2 info = mallinfo2();
  return int64_t(info.uordblks + info.hblkhd);
}

} // namespace dtlrt
