//===- Watchdog.h - no rank hangs the job -----------------------*- C++ -*-===//
//
// One monitor thread per rank. The training loop and the collectives say
// what the rank is doing (beats); when a rank makes no progress for the
// deadline (DTL_TIMEOUT seconds), its monitor asks every other rank's
// monitor where it is, over a communicator of their own, and ends the job
// with MPI_Abort, naming the ranks that did not answer (stopped, or stuck
// outside MPI) and what each that did answer was doing. A rank killed
// outright already ends the job through the launcher; a stopped or hung one
// is what this catches. The CPU and CUDA targets share it: a CUDA step's
// wait for the GPU is one long activity.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_WATCHDOG_H
#define DTLRT_WATCHDOG_H

#include "dtlrt/Runtime.h"

#include <string>
#include <vector>

namespace dtlrt {

constexpr int kDefaultTimeoutSeconds = 600;

/// DTL_TIMEOUT in seconds (kDefaultTimeoutSeconds when unset); a value that
/// is not a positive number is an error, said in `error`.
double watchdogTimeout(std::string &error);

/// Starts this rank's monitor (collective: every rank calls it after
/// MPI_Init_thread). `peersCanBeAsked` is whether MPI runs with
/// MPI_THREAD_MULTIPLE; without it the monitor only aborts, saying what
/// this rank waited in. `axisNames` name the mesh axes in messages.
void startWatchdog(double timeoutSeconds, int rank, bool peersCanBeAsked,
                   const std::vector<std::string> &axisNames);
/// Stops the monitor (collective; before MPI_Finalize).
void stopWatchdog();

/// Progress: this rank now does `what` (a string that outlives the call),
/// at training step `step` (-1: unchanged); the deadline starts again.
void watchdogBeat(const char *what, int64_t step = -1);
/// As watchdogBeat, for a collective of `count` elements over `axes`.
void watchdogCollective(const char *what, int64_t count, const Axes &axes);
/// As watchdogBeat with a text made at run time (the CUDA device's last
/// queued collective).
void watchdogBeatText(const std::string &what);

/// The deadline does not run while the rank waits for something with no
/// bound of its own (between runs; while loading data before training).
void watchdogPause();

} // namespace dtlrt

#endif // DTLRT_WATCHDOG_H
