//===- Watchdog.cpp - the monitor thread behind DTL_TIMEOUT ---------------===//

#include "dtlrt/Watchdog.h"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace dtlrt {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kAskTag = 7001, kAnswerTag = 7002;
constexpr auto kPoll = std::chrono::milliseconds(100);

struct Monitor {
  std::mutex mutex;
  char what[192] = "starting";
  int64_t step = 0;
  bool armed = false;
  Clock::time_point since = Clock::now();
  double timeout = kDefaultTimeoutSeconds;
  int rank = 0, world = 1;
  bool askPeers = false;
  std::vector<std::string> axisNames;
  MPI_Comm comm = MPI_COMM_NULL;
  std::atomic<bool> stop{false};
  std::thread thread;

  /// "step 17, in all_reduce ... for 12 s".
  std::string describe() {
    std::lock_guard<std::mutex> lock(mutex);
    double seconds = std::chrono::duration<double>(Clock::now() - since).count();
    char text[320];
    std::snprintf(text, sizeof text, "step %lld, %s for %.0f s", (long long)step, what, seconds);
    return text;
  }

  /// Answers the other monitors' questions; `alsoStuck` says this rank is
  /// itself past the deadline.
  void answerPeers(bool alsoStuck) {
    for (;;) {
      int pending = 0;
      MPI_Status status;
      MPI_Iprobe(MPI_ANY_SOURCE, kAskTag, comm, &pending, &status);
      if (!pending)
        return;
      int question = 0;
      MPI_Recv(&question, 1, MPI_INT, status.MPI_SOURCE, kAskTag, comm, MPI_STATUS_IGNORE);
      std::string answer = describe() + (alsoStuck ? " (it timed out too)" : "");
      MPI_Send(answer.data(), int(answer.size()), MPI_CHAR, status.MPI_SOURCE, kAnswerTag, comm);
    }
  }

  /// Past the deadline: asks the peers where they are, says it all, and
  /// ends the job.
  [[noreturn]] void fire() {
    std::string report = "error: rank " + std::to_string(rank) + ": no progress for " +
                         std::to_string(int(timeout)) + " s (DTL_TIMEOUT): " + describe();
    if (askPeers && world > 1) {
      int question = 1;
      std::vector<MPI_Request> asks;
      for (int peer = 0; peer < world; ++peer)
        if (peer != rank)
          MPI_Isend(&question, 1, MPI_INT, peer, kAskTag, comm, &asks.emplace_back());
      std::map<int, std::string> answers;
      // Live monitors answer within a poll (100 ms); 1.5 s is ample.
      auto until = Clock::now() + std::chrono::duration<double>(std::min(1.5, timeout));
      while (int(answers.size()) < world - 1 && Clock::now() < until) {
        answerPeers(/*alsoStuck=*/true);
        int ready = 0;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, kAnswerTag, comm, &ready, &status);
        if (!ready) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        int length = 0;
        MPI_Get_count(&status, MPI_CHAR, &length);
        std::string text(size_t(length), '\0');
        MPI_Recv(text.data(), length, MPI_CHAR, status.MPI_SOURCE, kAnswerTag, comm,
                 MPI_STATUS_IGNORE);
        answers[status.MPI_SOURCE] = text;
      }
      std::string silent;
      for (int peer = 0; peer < world; ++peer)
        if (peer != rank && !answers.count(peer))
          silent += (silent.empty() ? "" : ", ") + std::to_string(peer);
      if (!silent.empty())
        report += "\n  rank " + silent + " stopped answering (stopped, killed, or stuck " +
                  "outside MPI)";
      for (auto &[peer, text] : answers)
        report += "\n  rank " + std::to_string(peer) + ": " + text;
    }
    report += "\n  ending the job\n";
    std::fputs(report.c_str(), stderr);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort(); // MPI_Abort does not return
  }

  void run() {
    while (!stop.load()) {
      std::this_thread::sleep_for(kPoll);
      if (askPeers)
        answerPeers(/*alsoStuck=*/false);
      bool late;
      {
        std::lock_guard<std::mutex> lock(mutex);
        late = armed && std::chrono::duration<double>(Clock::now() - since).count() > timeout;
      }
      if (late)
        fire();
    }
  }
};

Monitor *monitor = nullptr;

} // namespace

double watchdogTimeout(std::string &error) {
  const char *env = std::getenv("DTL_TIMEOUT");
  if (!env)
    return kDefaultTimeoutSeconds;
  char *end = nullptr;
  double seconds = std::strtod(env, &end);
  if (end == env || *end || !std::isfinite(seconds) || seconds <= 0) {
    error = std::string("DTL_TIMEOUT is '") + env + "'; it must be a positive number of seconds";
    return kDefaultTimeoutSeconds;
  }
  return seconds;
}

void startWatchdog(double timeoutSeconds, int rank, bool peersCanBeAsked,
                   const std::vector<std::string> &axisNames) {
  monitor = new Monitor;
  monitor->axisNames = axisNames;
  monitor->timeout = timeoutSeconds;
  monitor->rank = rank;
  monitor->askPeers = peersCanBeAsked;
  MPI_Comm_size(MPI_COMM_WORLD, &monitor->world);
  // The monitors' questions never mix with the training's messages.
  MPI_Comm_dup(MPI_COMM_WORLD, &monitor->comm);
  monitor->thread = std::thread([] { monitor->run(); });
}

void stopWatchdog() {
  if (!monitor)
    return;
  monitor->stop = true;
  monitor->thread.join();
  MPI_Comm_free(&monitor->comm);
  delete monitor;
  monitor = nullptr;
}

void watchdogBeat(const char *what, int64_t step) {
  if (!monitor)
    return;
  std::lock_guard<std::mutex> lock(monitor->mutex);
  std::snprintf(monitor->what, sizeof monitor->what, "%s", what);
  if (step >= 0)
    monitor->step = step;
  monitor->armed = true;
  monitor->since = Clock::now();
}

void watchdogBeatText(const std::string &what) { watchdogBeat(what.c_str()); }

void watchdogCollective(const char *what, int64_t count, const Axes &axes) {
  if (!monitor)
    return;
  std::lock_guard<std::mutex> lock(monitor->mutex);
  int n = std::snprintf(monitor->what, sizeof monitor->what, "in %s of %lld elements over [", what,
                        (long long)count);
  for (size_t i = 0; i < axes.size() && n > 0 && n < int(sizeof monitor->what); ++i) {
    int a = axes[i];
    const char *name = a < int(monitor->axisNames.size()) ? monitor->axisNames[a].c_str() : "?";
    n += std::snprintf(monitor->what + n, sizeof monitor->what - size_t(n), "%s%s", i ? ", " : "",
                       name);
  }
  if (n > 0 && n < int(sizeof monitor->what))
    std::snprintf(monitor->what + n, sizeof monitor->what - size_t(n), "]");
  monitor->armed = true;
  monitor->since = Clock::now();
}

void watchdogPause() {
  if (!monitor)
    return;
  std::lock_guard<std::mutex> lock(monitor->mutex);
  monitor->armed = false;
}

} // namespace dtlrt
