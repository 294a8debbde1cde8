//===- PreemptionTest.cpp - the first signal is noted, the second exits ---===//
//
// In a forked child, so the handlers and the exit do not touch the test
// process: SIGTERM sets the flag the training loop agrees on, and a second
// signal (here SIGUSR1) ends the process at once with 128 + its number.
//
//===----------------------------------------------------------------------===//

#include "Preemption.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

using namespace dtlrt;

TEST(Preemption, TheFirstSignalIsNotedTheSecondExitsAtOnce) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    installPreemptionHandlers();
    if (preemptionSignal() != 0)
      ::_exit(1);
    std::raise(SIGTERM);
    if (preemptionSignal() != SIGTERM)
      ::_exit(2);
    std::raise(SIGUSR1);
    ::_exit(3); // not reached: the second signal exits
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGUSR1);
}
