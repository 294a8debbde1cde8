//===- Explain.h - what a partitioned program will do, before it runs -*- C++ -*-===//

#ifndef DTL_CODEGEN_EXPLAIN_H
#define DTL_CODEGEN_EXPLAIN_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <string>

namespace dtl {

/// The alpha-beta model of one mesh axis's links.
struct LinkModel {
  double alphaSeconds = 0, bytesPerSecond = 1;
  std::string what; ///< where the figures come from
};

struct ExplainOptions {
  std::string sourceFile;
  bool json = false;
  /// A Chrome trace (JSON) of the step's predicted timeline instead.
  bool trace = false;
  /// Per axis name; axes not named get the defaults (see explain()).
  std::map<std::string, LinkModel> links;
  /// Sustained compute per rank, for the compute part of the step time.
  double teraflops = 0.4 * 989;
  /// Ranks per node: an axis whose groups fit in a node uses NVLink figures.
  int ranksPerNode = 8;
};

/// Reports on a module partitioned with annotated layouts
/// (buildPipeline(..., annotateLayouts = true)): the sharding of every
/// param, gradient, optimizer state and large activation; every collective
/// of the train step with its axes, bytes sent per rank, phase and source;
/// the memory each rank allocates; and a predicted step time from an
/// alpha-beta model per axis. Defaults: H100 NVLink (5 us, 450 GB/s) inside
/// a node, InfiniBand NDR (15 us, 45 GB/s) across nodes.
mlir::LogicalResult explain(mlir::ModuleOp module, const ExplainOptions &options,
                            llvm::raw_ostream &os);

} // namespace dtl

#endif // DTL_CODEGEN_EXPLAIN_H
