//===- Passes.td - dtl passes ------------------------------*- tablegen -*-===//

#ifndef DTL_PASSES_TD
#define DTL_PASSES_TD

include "mlir/Pass/PassBase.td"

def InterleaveSplits : Pass<"dtl-interleave-splits", "mlir::ModuleOp"> {
  let summary = "Store a fused param that is split into pieces so each rank's block holds a block of every piece.";
  let description = [{
    nanoGPT's attention computes q, k and v with one GEMM (`c_attn`) and
    splits its columns in three. Split by columns over `tp`, a block layout
    gives rank 0 all of q and part of k: the split would have to gather. So
    when the value a `dtl.split` splits along `d` is computed from params
    by ops that treat positions along `d` alike (elementwise ops, broadcasts
    of a bias, a matmul's columns), and those params split that dimension n
    ways, the params are stored in interleaved order (`dtl.interleave =
    [dim, n, piece sizes...]` on the argument): n blocks, each holding 1/n
    of every piece. The split becomes `interleave = n`, which each rank
    computes on its own block, and its gradient (a concat) likewise.

    The global meaning of the program is unchanged, only the order a
    param's elements are stored in: initialisation, checkpoints and
    gradient checks map every element to its place in the param as
    declared, so a checkpoint is the same on every mesh (and nanoGPT's
    `c_attn` maps onto it directly). A split whose cone reaches anything
    else (an input, dropout, another use of a value in it) is left as is:
    the partitioner gathers for it; so is one whose params are already
    stored interleaved (the layers of an interleaved pipeline: a param has
    one stored order).
  }];
  let dependentDialects = ["::dtl::DtlDialect"];
}

def Autodiff : Pass<"dtl-autodiff", "mlir::ModuleOp"> {
  let summary = "Derive the backward pass of the model function.";
  let description = [{
    For the function named by the module's `dtl.model` attribute, whose first
    result is the scalar loss, creates `@<model>_grad` returning the loss and
    d(loss)/d(param) for every argument with `dtl.role = #dtl.role<param>`.
    Each op's gradient comes from its `VjpOpInterface`; gradients reaching a
    value twice are summed. A `dtl.repeat` becomes a reverse `dtl.repeat`
    (JAX's scan rule): the forward also yields, per layer, the values its
    backward reads (as extra stacked results), and the backward carries the
    gradient of the carried value, sums those of invariants, and yields each
    layer's gradient of the stacked operands; a repeat inside a repeat is the
    same rule applied to the body. An op without a gradient on the path from
    a param to the loss is an error. Unused values, and what a forward
    saved for no one, are removed.
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
    and state. The optimizer and its hyper-parameters come from the
    module's `#dtl.optimizer` attribute; with `zero` (ZeRO stage) in its
    `#dtl.train`, state (stage 1), gradients (2) and params (3) are
    constrained to be split over the data-parallel axes.
  }];
  let dependentDialects = ["::dtl::DtlDialect", "::mlir::func::FuncDialect"];
}

def PropagateSharding : Pass<"dtl-propagate-sharding", "mlir::ModuleOp"> {
  let summary = "Give every value a sharding, from the annotated arguments.";
  let description = [{
    Propagates the `dtl.sharding` of function arguments and the shardings of
    `dtl.sharding_constraint`s through every op by its
    `ShardingRuleOpInterface` loops, forward and backward, until nothing
    changes, and records the choice per op as `dtl.shardings` (and, on a
    `dtl.repeat`, its body arguments' as `dtl.arg_shardings`: a repeat ties
    each operand, body argument, yielded value and result together, a
    stacked one by its trailing dimensions, so every layer has one layout).
    Priorities: annotations and constraints are decided first and never
    changed; within a rule, splits are taken before replication, from the
    largest tensor first, then in program order; a `whole` loop is never
    split; a mesh axis splits one loop per rule; a split first flows only
    into values no larger than the one it came from (a bias's split waits
    for its activation), then anywhere; whatever is still open at the end
    is replicated. A sharding the user wrote that splits a dimension an op
    needs whole (the classes of a cross_entropy) is an error naming both.
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
    communication), or a split moves between dimensions
    (`shard.all_to_all`). `dtl.sharding_constraint` ops are resolved here. A
    `dtl.repeat`'s body is partitioned once; its stacked results keep
    pending partial sums, reduced once after the loop. Data parallelism is
    not a special case: the gradient all-reduce appears because the batch
    loop of the weight-gradient matmul is split.
  }];
  let options = [
    Option<"annotate", "annotate", "bool", /*default=*/"false",
           "Keep each result's actual layout (with pending partial sums) in "
           "`dtl.shardings`, for --explain">,
  ];
  let dependentDialects = ["::dtl::DtlDialect", "::mlir::shard::ShardDialect"];
}

def CheckSchedule : Pass<"dtl-check-schedule", "mlir::ModuleOp"> {
  let summary = "Prove every rank's communication matches its peers': no deadlock, no mismatch.";
  let description = [{
    On a partitioned program whose ranks run different code (an
    `scf.index_switch` on the rank's mesh coordinate, as pipeline stages
    are) or exchange tensors point to point (`shard.send`/`shard.recv` with
    static peers), lists for every rank of the mesh the communication it
    performs, in order (a `dtl.repeat`'s body once per iteration), and runs
    them together: a send completes with its peer's matching receive (both
    blocking, the worst case of MPI and NCCL), a collective when every rank
    of its group is at the same collective. A schedule that cannot
    complete is refused with an error at the waiting rank's operation and
    a note at its peer's, naming both ranks and why: a peer that finished,
    two ranks each waiting for the other (or a ring of them, as an
    interleaved pipeline's stages send around), a collective a rank never
    reaches, or kinds or types that differ. Programs without stage code or
    point-to-point transfers run the same collectives on every rank by
    construction and are not walked.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::shard::ShardDialect"];
}

def SchedulePipeline : Pass<"dtl-schedule-pipeline", "mlir::ModuleOp"> {
  let summary = "Run the micro-batches through the pipeline stages in the train section's order.";
  let description = [{
    On the partitioned program: a micro-batch loop (`dtl.repeat
    accumulate`) whose body runs a pipelined repeat (each rank its stage's
    block of layers) and its backward becomes one `scf.index_switch` on the
    rank's stage coordinate (`shard.process_multi_index`), each case that
    stage's unrolled schedule (`gpipe`, `1f1b` or `interleaved`,
    `dtl.train`'s `pipeline`): per micro-batch (`dtl.stacked_slice` of the loop's
    inputs) a receive of the carried activation from the stage before (the
    first stage computes it), the stage's layers and a send to the next
    (the last stage computes the head, the loss and the head's gradient),
    and the backward the other way (`shard.send`/`shard.recv`). A value
    only the first or the last stage computes (the loss, the embedding's or
    the head's gradient, a tied weight's gradient as the sum of both) is
    zero on the other stages and all-reduced over the stage axis after the
    switch; the stacked params' gradients are each stage's own block.
    With `virtual_stages V` on the repeat (`interleaved`), each stage's
    block is V chunks of layers, each run as its own repeat on a view of
    its layers (`dtl.virtual_stage`), and a micro-batch leaving the last
    stage's chunk goes on to the first stage's next chunk. With
    `stage_layers` (uneven stages), stage s runs its n_s layers of its
    slots and its layer gradients are zero in the rest. Each stage's
    repeat is marked with the model's layer it starts at
    (`dtl.first_layer`). The transfers are ordered by running the stages together on a model of time, so
    that blocking sends and receives cannot wait in a cycle
    (dtl-check-schedule proves it) and stages wait little.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::shard::ShardDialect"];
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

//===----------------------------------------------------------------------===//
// The execution stage: what the printers print, decided here
//===----------------------------------------------------------------------===//

def MixedPrecision : Pass<"dtl-mixed-precision", "mlir::ModuleOp"> {
  let summary = "Store activations in bf16, keep masters, state and gradients in f32.";
  let description = [{
    With `precision = bf16` in `dtl.train` (else nothing): every real a
    step computes is stored in bf16, except what must stay exact enough to
    train on: the optimizer's params, state and updates; the gradients from
    the op that produces them through their sums, collectives and loop
    accumulations to the update (GEMMs and sums write them in f32
    directly); scalars (the loss, norms, the learning rate); and the
    statistics kernels save (layernorm's mean and rstd, attention's
    log-sum-exp, per-example losses). Master weights stay f32 arguments; a
    `dtl.convert` after each value that a bf16 op reads makes its working
    copy. Kernels read and write the stored types and compute in f32.
    Runs after partitioning, so layouts and collectives are chosen once for
    both precisions; collectives move the stored type. With
    `reduce_precision = bf16` the gradients' all-reduces and reduce-scatters
    sum bf16 (half the bytes) and the gradient becomes f32 after them.
  }];
  let dependentDialects = ["::dtl::DtlDialect"];
}

def FuseElementwise : Pass<"dtl-fuse-elementwise", "mlir::ModuleOp"> {
  let summary = "Chains of elementwise ops -> one dtl.fused each.";
  let description = [{
    On the partitioned program: an elementwise op (or constant) whose only
    use is a later elementwise op of the same block, with no optimizer
    update in between (it could overwrite a value the chain reads late), is
    computed inside that op's loop: each chain becomes one `dtl.fused`
    whose body computes one element from one element of each input. Every
    elementwise op ends up in a `dtl.fused`, alone or not, so the printers
    have one way to print them: a loop (CPU) or a kernel (CUDA).
  }];
  let dependentDialects = ["::dtl::DtlDialect"];
}

def ScheduleCollectives : Pass<"dtl-schedule-collectives", "mlir::ModuleOp"> {
  let summary = "Start each collective where it stands; wait where its result is read.";
  let description = [{
    Gives every communicating `shard` collective a `dtl.slot` (unique in the
    module) and adds a `dtl.collective_wait` for it: with `overlap`, before
    the first op that reads the result (views of it move after the wait),
    so the communication runs beside the compute in between (the CUDA
    target's communication stream); without, right after it (the CPU
    target, whose MPI collectives complete when they return). The wait
    lists the collective's input, so its buffer stays alive until then.
  }];
  let options = [
    Option<"overlap", "overlap", "bool", /*default=*/"false",
           "Wait before the first reader, not at once">,
  ];
  let dependentDialects = ["::dtl::DtlDialect"];
}

def MarkInPlace : Pass<"dtl-mark-inplace", "mlir::ModuleOp"> {
  let summary = "Mark optimizer updates that may overwrite their param and state.";
  let description = [{
    An optimizer update whose param and state are arguments read by nothing
    after it, and whose results are only returned, gets `dtl.in_place`: it
    writes its results straight into the function's results, which the
    runtime points at the param and state buffers themselves (no arena
    space, no copies). The update reads each element before it writes it.
  }];
  let dependentDialects = ["::dtl::DtlDialect"];
}

def PlanBuffers : Pass<"dtl-plan-buffers", "mlir::ModuleOp"> {
  let summary = "Give every value its place: an arena offset, a result, a slice or a view.";
  let description = [{
    Per function, one arena for the values a step computes: each value's
    live range runs from its definition to its last use (mlir::Liveness;
    a use inside a `dtl.repeat` keeps it alive to the end of the loop; a
    view's uses keep its source alive), and first fit in definition order
    gives it an offset, reusing dead bytes. A repeat body's values live
    within one iteration; a value the body yields as a stacked result is
    written straight into its layer's slice. Views (reshapes, waits) get
    none; in-place updates write into the function's results.
    Cross-entropy's gradient may be written over the logits it reads last,
    and on the CPU a fused loop over a dying input of its size (the CUDA
    fused kernels take `__restrict__` pointers); first fit is run with and
    without such sharing and the smaller arena kept. f32 reals take the
    bytes of the module's precision (`dtl.train`), bf16 two; the plan is
    per target, since where collectives are awaited changes lifetimes. Writes
    `dtl.place` on every op, `dtl.arena_bytes` on every function and
    `dtl.target` on the module: what the printers and `--explain` read.
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "cpu or cuda: recorded as the module's dtl.target">,
  ];
  let dependentDialects = ["::dtl::DtlDialect"];
}

//===----------------------------------------------------------------------===//
// For tests
//===----------------------------------------------------------------------===//

def TestShardingRules : Pass<"dtl-test-sharding-rules", "mlir::ModuleOp"> {
  let summary = "Write each op's sharding rule on it, for tests.";
  let description = [{
    Sets a `sharding_rule` string on every op with a
    `ShardingRuleOpInterface`: its indexing maps in loop names (`1` for a
    dimension no loop indexes), the sum and whole loops, the operands it is
    linear in, and `additive` when partial sums of all its operands flow
    through, e.g. `([i, k], [k, j]) -> ([i, j]) sum={k} whole={} linear={0, 1}`
    for a matmul.
  }];
}

#endif // DTL_PASSES_TD
