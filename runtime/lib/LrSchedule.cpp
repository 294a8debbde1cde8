//===- LrSchedule.cpp - the learning rate at each step --------------------===//

#include "LrSchedule.h"

#include <algorithm>
#include <cmath>

namespace dtlrt {

double scheduledLr(const Program &p, int64_t step, int64_t steps) {
  bool warms = p.schedule == LrSchedule::Warmup || p.schedule == LrSchedule::WarmupCosine;
  bool decays = p.schedule == LrSchedule::Cosine || p.schedule == LrSchedule::WarmupCosine;
  if (warms && step <= p.warmup)
    return p.lr * double(step) / double(std::max<int64_t>(p.warmup, 1));
  if (decays) {
    int64_t start = warms ? p.warmup : 0;
    double progress = double(step - start) / double(std::max<int64_t>(steps - start, 1));
    return p.minLr + 0.5 * (p.lr - p.minLr) * (1 + std::cos(M_PI * std::min(progress, 1.0)));
  }
  return p.lr;
}

} // namespace dtlrt
