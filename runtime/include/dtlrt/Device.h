//===- Device.h - where a program's tensors live and its steps run -*- C++ -*-===//
//
// The training loop keeps every tensor on the host. A program built for an
// accelerator (--target=cuda) also hands the runtime a Device: the loop then
// mirrors each tensor there, uploads inputs before a step, runs the step
// through the Device and downloads the small results after it.
//
//===----------------------------------------------------------------------===//

#ifndef DTLRT_DEVICE_H
#define DTLRT_DEVICE_H

#include "dtlrt/RankDiscovery.h"
#include "dtlrt/Runtime.h"

#include <string>
#include <vector>

namespace dtlrt {

class Device {
public:
  virtual ~Device() = default;
  /// Picks this rank's device; on failure returns a message (and nothing
  /// else may be called), else an empty string.
  virtual std::string setUp(const LaunchInfo &launch, Context &ctx, int rank) = 0;
  /// One line about the device, for the start-up banner.
  virtual std::string describe() const = 0;
  virtual void *allocate(size_t bytes) = 0;
  virtual void upload(void *device, const void *host, size_t bytes) = 0;
  /// Waits for the device's work to finish first.
  virtual void download(void *host, const void *device, size_t bytes) = 0;
  /// Runs one step on device buffers and waits for it; a failure inside it
  /// (a bad label, a collective that fails or times out) stops the program
  /// on every rank with a message.
  virtual void run(StepFn fn, Context &ctx, const std::vector<void *> &args,
                   const std::vector<void *> &results) = 0;
  /// Bytes of device memory allocated so far (tensors, step buffers, scratch).
  virtual int64_t allocatedBytes() const = 0;
};

} // namespace dtlrt

#endif // DTLRT_DEVICE_H
