//===- Contract.h - the names of the training contract, and lookups -*- C++ -*-===//
//
// The attributes the frontend, the passes, codegen and --explain exchange,
// by name, with typed lookups. What each holds is defined in DtlAttrs.td and
// verified by the dialect (DtlDialect.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef DTL_DIALECT_CONTRACT_H
#define DTL_DIALECT_CONTRACT_H

#include "dialects/dtl/DtlOps.h"

namespace dtl {

namespace attr {
// On the module.
inline constexpr llvm::StringLiteral model = "dtl.model";         // FlatSymbolRefAttr
inline constexpr llvm::StringLiteral mesh = "dtl.mesh";           // MeshAttr
inline constexpr llvm::StringLiteral optimizer = "dtl.optimizer"; // OptimizerAttr
inline constexpr llvm::StringLiteral train = "dtl.train";         // TrainAttr
inline constexpr llvm::StringLiteral target = "dtl.target";       // TargetAttr (after planning)
// On function arguments and results.
inline constexpr llvm::StringLiteral role = "dtl.role"; // RoleAttr
inline constexpr llvm::StringLiteral name = "dtl.name"; // StringAttr
inline constexpr llvm::StringLiteral init = "dtl.init"; // InitAttr (params)
// Params: whether the optimizer's weight decay applies (a BoolAttr; the
// frontend writes it for every param, true by default for rank >= 2).
inline constexpr llvm::StringLiteral decay = "dtl.decay";
inline constexpr llvm::StringLiteral sharding = "dtl.sharding"; // ShardingAttr
// Params (and their optimizer state) stored interleaved for a split
// (dtl-interleave-splits): [dim, blocks, piece sizes...] (DenseI64ArrayAttr).
inline constexpr llvm::StringLiteral interleave = "dtl.interleave";
// Params (and their optimizer state) of uneven pipeline stages: stored as
// max(n) slots per stage along dim 0, stage s's n_s layers first
// ([n_0, ..., n_{p-1}], DenseI64ArrayAttr; the rest are holes).
inline constexpr llvm::StringLiteral stageLayers = "dtl.stage_layers";
inline constexpr llvm::StringLiteral globalType = "dtl.global_type"; // TypeAttr (partitioned)
// i32 inputs: their values lie in [0, bound) (an IntegerAttr): the classes
// of the cross-entropy they label, the rows of the table they index.
inline constexpr llvm::StringLiteral bound = "dtl.bound";
// i32 inputs that only label classes (no table lookup): a negative value is
// an ignored example, as PyTorch's ignore_index (a UnitAttr).
inline constexpr llvm::StringLiteral ignorable = "dtl.ignorable";
// On ops.
inline constexpr llvm::StringLiteral shardings = "dtl.shardings"; // one ShardingAttr per result
inline constexpr llvm::StringLiteral argShardings = "dtl.arg_shardings";   // repeat: per body arg
inline constexpr llvm::StringLiteral loopShardings = "dtl.loop_shardings"; // mesh axes per loop
inline constexpr llvm::StringLiteral place = "dtl.place";      // one PlaceAttr per result
inline constexpr llvm::StringLiteral inPlace = "dtl.in_place"; // updates over their state
// An op a `dtl.repeat recompute`'s backward runs again (a UnitAttr).
inline constexpr llvm::StringLiteral recomputed = "dtl.recomputed";
inline constexpr llvm::StringLiteral arenaBytes = "dtl.arena_bytes"; // func: its arena's size
/// A pipeline stage's layers (dtl.repeat): the micro-batch they run for.
inline constexpr llvm::StringLiteral microBatch = "dtl.micro_batch";
/// ... and, in an interleaved schedule, which of the stage's virtual stages
/// (chunks of layers) they are.
inline constexpr llvm::StringLiteral virtualStage = "dtl.virtual_stage";
/// ... and the model's layer its first iteration is.
inline constexpr llvm::StringLiteral firstLayer = "dtl.first_layer";
inline constexpr llvm::StringLiteral slot = "dtl.slot"; // shard collectives: their wait slot
} // namespace attr

/// The name dtl-partition puts on the location (a NameLoc around the
/// constraint's) of a collective it inserts for a sharding constraint, so
/// --explain can say what the collective is for.
inline constexpr llvm::StringLiteral constraintReshard = "constraint";

/// The module's mesh (`dtl.mesh`), or null.
MeshAttr getMesh(mlir::ModuleOp module);
/// The `shard.grid` the mesh names, or null.
mlir::shard::GridOp getGrid(mlir::ModuleOp module);

/// The role of argument `index` / result `index` of `fn`, if it has one.
std::optional<Role> argRole(mlir::func::FuncOp fn, unsigned index);
std::optional<Role> resultRole(mlir::func::FuncOp fn, unsigned index);
/// The user's name of argument / result `index`, or "".
llvm::StringRef argName(mlir::func::FuncOp fn, unsigned index);
llvm::StringRef resultName(mlir::func::FuncOp fn, unsigned index);
/// Whether weight decay applies to param argument `index`: its `dtl.decay`,
/// or (without one) whether it has rank 2 or more.
bool argDecays(mlir::func::FuncOp fn, unsigned index);

} // namespace dtl

#endif // DTL_DIALECT_CONTRACT_H
