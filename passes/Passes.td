//===- Passes.td - dtl passes ------------------------------*- tablegen -*-===//

#ifndef DTL_PASSES_TD
#define DTL_PASSES_TD

include "mlir/Pass/PassBase.td"

def Autodiff : Pass<"dtl-autodiff", "mlir::ModuleOp"> {
  let summary = "Derive the backward pass of the model function.";
  let description = [{
    For the function named by the module's `dtl.model` attribute, whose first
    result is the scalar loss, creates `@<model>_grad` returning the loss and
    d(loss)/d(param) for every argument with `dtl.role = "param"`. Each op's
    gradient comes from its `VjpOpInterface`; gradients reaching a value
    twice are summed. An op without a gradient on the path from a param to
    the loss is an error.
  }];
  let dependentDialects = ["::dtl::DtlDialect"];
}

def Optimizer : Pass<"dtl-optimizer", "mlir::ModuleOp"> {
  let summary = "Build the train_step function: gradients plus optimizer update.";
  let description = [{
    Inlines `@<model>_grad` into one `@train_step` that also takes the
    optimizer state (zero-initialised by the runtime, sharded like its
    param), the learning rate and the 1-based step, computes the global
    gradient norm, and returns the loss, the norm, and the updated params
    and state. The optimizer comes from the module's `dtl.optimizer`
    dictionary (`kind` = "sgd" or "adamw" and its hyper-parameters).
  }];
  let dependentDialects = ["::dtl::DtlDialect", "::mlir::func::FuncDialect"];
}

def PropagateSharding : Pass<"dtl-propagate-sharding", "mlir::ModuleOp"> {
  let summary = "Give every value a sharding, from the annotated arguments.";
  let description = [{
    Propagates the `dtl.sharding` of function arguments (and results) through
    every op by its `ShardingRuleOpInterface` loops, forward and backward,
    until nothing changes, and records the choice per op as
    `dtl.shardings`. Rules, in priority order: a user annotation is never
    changed; a loop takes the axes of the first operand or result (in program
    order) that splits it; a `whole` loop is never split; a mesh axis is
    used once per op; whatever is still open at the end is replicated.
  }];
  let dependentDialects = ["::dtl::DtlDialect"];
}

def Partition : Pass<"dtl-partition", "mlir::ModuleOp"> {
  let summary = "Turn the global program into the per-rank (SPMD) program.";
  let description = [{
    Rewrites every function to local shapes using the shardings chosen by
    `dtl-propagate-sharding`, and inserts the collectives (upstream `shard`
    ops) where a value's sharding differs between producer and consumer: a
    partial sum meets an op that is not linear in it (`shard.all_reduce`, or
    `shard.reduce_scatter` when the consumer wants it split over the same
    axes), a split dimension is needed whole (`shard.all_gather`), or a
    replicated dimension is needed split (`shard.all_slice`, local, no
    communication). `dtl.sharding_constraint` ops are resolved here.
    Data parallelism is not a special case: the gradient all-reduce appears
    because the batch loop of the weight-gradient matmul is split.
  }];
  let options = [
    Option<"annotate", "annotate", "bool", /*default=*/"false",
           "Keep each result's actual layout (with pending partial sums) in "
           "`dtl.shardings`, for --explain">,
  ];
  let dependentDialects = ["::dtl::DtlDialect", "::mlir::shard::ShardDialect"];
}

def FuseEpilogues : Pass<"dtl-fuse-epilogues", "mlir::ModuleOp"> {
  let summary = "Fold bias additions into the matmuls that produce their input.";
  let description = [{
    On the partitioned program: `dtl.add(dtl.matmul(a, b), dtl.broadcast(bias))`
    (either operand order), where the matmul has no other use and the
    broadcast repeats a vector along the leading dimensions, becomes one
    `dtl.matmul_bias`. The GEMM then accumulates onto the bias (BLAS's
    beta = 1): two passes over the activation fewer per bias, as in a
    cuBLASLt epilogue.
  }];
  let dependentDialects = ["::dtl::DtlDialect"];
}

#endif // DTL_PASSES_TD
