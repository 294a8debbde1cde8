//===- PipelineTimeline.h - a pipeline's stages run together, predicted -*- C++ -*-===//
//
// For --explain: the stages of a scheduled pipeline (dtl-schedule-pipeline's
// scf.index_switch) run side by side on a model of time, each op taking what
// the caller's cost model says and each send waiting for its receive.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_CODEGEN_PIPELINETIMELINE_H
#define DTL_CODEGEN_PIPELINETIMELINE_H

#include "dialects/dtl/Contract.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <optional>
#include <string>
#include <vector>

namespace dtl {

/// One stretch of one stage's time: a micro-batch's forward ("F3") or
/// backward ("B3") with what runs around it (of virtual stage v: "F3.v"),
/// or a transfer.
struct TimelineSpan {
  int64_t stage;
  std::string what;
  bool transfer;
  double start, end; ///< seconds from the step's start
};

struct PipelineTimeline {
  int16_t axis = 0;
  int64_t stages = 0, microBatches = 0, virtualStages = 1;
  std::vector<TimelineSpan> spans;
  /// Per stage.
  std::vector<double> busySeconds, transferSeconds, flops;
  /// The first layer of each of the stage's chunks (one unless
  /// interleaved), and the layers of one chunk.
  std::vector<std::vector<int64_t>> chunkFirstLayers;
  std::vector<int64_t> chunkLayers;
  /// Forwards (of a chunk) whose backward has not run yet, at most, and what
  /// one such forward saves for its backward on the stage.
  std::vector<int64_t> maxInFlight, savedBytes;
  double seconds = 0; ///< when the last stage finishes
};

/// The timeline of `step`'s pipeline, or nullopt when it has none.
/// `opSeconds` is an op's time (with what it contains), `transferSeconds`
/// a point-to-point transfer's of that many bytes.
std::optional<PipelineTimeline>
simulatePipeline(mlir::func::FuncOp step, MeshAttr mesh,
                 llvm::function_ref<double(mlir::Operation *)> opSeconds,
                 llvm::function_ref<double(int64_t)> transferSeconds,
                 llvm::function_ref<double(mlir::Operation *)> opFlops, int64_t realBytes);

/// The pipeline's switch in `step`, if it has one.
mlir::Operation *pipelineSwitch(mlir::func::FuncOp step);

} // namespace dtl

#endif // DTL_CODEGEN_PIPELINETIMELINE_H
