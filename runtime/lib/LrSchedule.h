//===- LrSchedule.h - the learning rate at each step ------------*- C++ -*-===//

#ifndef DTLRT_LRSCHEDULE_H
#define DTLRT_LRSCHEDULE_H

#include "dtlrt/Runtime.h"

namespace dtlrt {

/// The learning rate of 1-based `step` out of `steps`: linear warmup over
/// `p.warmup` steps to `p.lr`, then (cosine schedules) a half cosine down to
/// `p.minLr` at the last step.
double scheduledLr(const Program &p, int64_t step, int64_t steps);

} // namespace dtlrt

#endif // DTLRT_LRSCHEDULE_H
