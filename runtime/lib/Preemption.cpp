//===- Preemption.cpp - the signal handlers -------------------------------===//

#include "Preemption.h"

#include <unistd.h>

#include <csignal>

namespace dtlrt {

namespace {

volatile std::sig_atomic_t received = 0;

extern "C" void onPreemptionSignal(int signal) {
  if (received) {
    static const char message[] = "dtlrt: a second signal: exiting at once\n";
    ssize_t ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
    (void)ignored;
    ::_exit(128 + signal);
  }
  received = signal;
}

} // namespace

void installPreemptionHandlers() {
  struct sigaction action = {};
  action.sa_handler = onPreemptionSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART; // blocking calls go on; the loop looks after the step
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int preemptionSignal() { return received; }

} // namespace dtlrt
