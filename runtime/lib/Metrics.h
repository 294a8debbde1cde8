//===- Metrics.h - what a run reports: JSONL metrics, memory ----*- C++ -*-===//

#ifndef DTLRT_METRICS_H
#define DTLRT_METRICS_H

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

namespace dtlrt {

/// One JSON object per line: per step its loss, lr, grad norm and
/// milliseconds (and `"skipped": true` when its update was skipped); per evaluation its loss and
/// accuracy. Numbers read back exactly; a non-finite one is null (JSON has no inf or nan).
class Metrics {
public:
  /// Opens `path`, truncated or (a resumed run) appended to; throws
  /// DataError when it cannot.
  void open(const std::string &path, bool append);
  bool isOpen() const { return out_.is_open(); }
  void step(int64_t step, double loss, double lr, double gradNorm, double ms, bool skipped);
  void eval(int64_t step, double loss, std::optional<double> accuracy);

private:
  std::ofstream out_;
};

/// This process's peak resident memory, in MiB.
double peakMemoryMiB();
/// Bytes the main thread's heap holds now: malloc's count of bytes in use,
/// mmapped blocks included (glibc mallinfo2; other threads' arenas are not
/// counted).
int64_t heapBytesInUse();

} // namespace dtlrt

#endif // DTLRT_METRICS_H
