//===- BufferPlan.h - where each intermediate value lives -------*- C++ -*-===//

#ifndef DTL_CODEGEN_BUFFERPLAN_H
#define DTL_CODEGEN_BUFFERPLAN_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"

namespace dtl {

/// One arena per step function: each op result gets a byte offset in it,
/// reused once the value is dead. Liveness runs from the defining op to the
/// last use (inclusive), so a result never overlaps an operand of its own op.
/// Views (reshape, one layer of a stacked tensor) get no bytes of their own:
/// they point into their source, which lives as long as any view of it.
struct BufferPlan {
  llvm::DenseMap<mlir::Value, int64_t> offsets;
  int64_t arenaBytes = 0;
};

/// Whether `op`'s result is a view of its first operand (no copy).
bool isView(mlir::Operation *op);

/// Optimizer results written straight into the function's result buffers
/// (which the runtime makes the param and state buffers themselves): each
/// returned result of an update op that is the last reader of its param
/// and state arguments, mapped to its result index. They need no arena.
llvm::DenseMap<mlir::Value, unsigned> inPlaceResults(mlir::func::FuncOp fn);

/// How a target runs a function's ops, as far as buffer lifetimes care.
struct Schedule {
  /// Ops computed inside the kernel of a later op (fused elementwise
  /// chains): they get no buffer, and they read their operands when that
  /// op runs.
  llvm::DenseMap<mlir::Operation *, mlir::Operation *> fusedInto;
  /// Values read asynchronously until the given op runs (a collective's
  /// input, read on the communication stream until its result is awaited).
  llvm::DenseMap<mlir::Value, mlir::Operation *> readUntil;
};

/// Plans the intermediates of `fn` (a partitioned step function) by first
/// fit in definition order; floats take `realBytes` each (4 or 8).
BufferPlan planBuffers(mlir::func::FuncOp fn, int64_t realBytes, const Schedule &schedule = Schedule());

/// Bytes of one value's buffer.
int64_t bufferBytes(mlir::Value v, int64_t realBytes);

} // namespace dtl

#endif // DTL_CODEGEN_BUFFERPLAN_H
