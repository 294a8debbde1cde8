//===- Preemption.h - SIGTERM and SIGUSR1 end a run with a checkpoint -*- C++ -*-===//
//
// Schedulers warn a job before they kill it: Slurm with `--signal`, Kubernetes
// and torchelastic with SIGTERM. The first SIGTERM or SIGUSR1 only sets a flag;
// the training loop agrees on it across ranks after each step, writes a
// checkpoint and exits with kPreemptedExitCode. A second signal exits at once.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_PREEMPTION_H
#define DTLRT_PREEMPTION_H

namespace dtlrt {

/// EX_TEMPFAIL: the run stopped early but can go on (`--resume auto`).
constexpr int kPreemptedExitCode = 75;

void installPreemptionHandlers();

/// The signal this rank received (0: none).
int preemptionSignal();

} // namespace dtlrt

#endif // DTLRT_PREEMPTION_H
