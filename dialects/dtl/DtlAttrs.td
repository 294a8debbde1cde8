//===- DtlAttrs.td - dtl attributes and enums --------------*- tablegen -*-===//
//
// The training contract every layer exchanges, typed: what a function
// argument is (role, name, initializer, sharding), the mesh, the optimizer
// and the train section. The dialect verifies them where they are attached
// (DtlDialect::verifyOperationAttribute / verifyRegionArgAttribute).
//
//===----------------------------------------------------------------------===//

#ifndef DTL_ATTRS_TD
#define DTL_ATTRS_TD

include "dialects/dtl/DtlDialect.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

class Dtl_EnumAttr<EnumInfo info, string mnemonic> : EnumAttr<Dtl_Dialect, info, mnemonic> {
  let assemblyFormat = "`<` $value `>`";
}

def Dtl_Role : I32EnumAttr<"Role", "what a step function's argument or result is", [
    I32EnumAttrCase<"param", 0>, I32EnumAttrCase<"input", 1>,
    I32EnumAttrCase<"opt_state", 2>, I32EnumAttrCase<"lr", 3>, I32EnumAttrCase<"step", 4>,
    I32EnumAttrCase<"loss", 5>, I32EnumAttrCase<"grad_norm", 6>, I32EnumAttrCase<"grad", 7>,
    I32EnumAttrCase<"correct", 8>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}
def Dtl_RoleAttr : Dtl_EnumAttr<Dtl_Role, "role">;

def Dtl_Recompute : I32EnumAttr<"Recompute", "what a repeat's backward runs again", [
    I32EnumAttrCase<"none", 0>, I32EnumAttrCase<"cheap", 1>, I32EnumAttrCase<"all", 2>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}
def Dtl_RecomputeAttr : Dtl_EnumAttr<Dtl_Recompute, "recompute">;

def Dtl_InitKind : I32EnumAttr<"InitKind", "how a param starts", [
    I32EnumAttrCase<"zeros", 0>, I32EnumAttrCase<"ones", 1>, I32EnumAttrCase<"normal", 2>,
    I32EnumAttrCase<"uniform", 3>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}

def Dtl_OptimizerKind : I32EnumAttr<"OptimizerKind", "the update rule", [
    I32EnumAttrCase<"sgd", 0>, I32EnumAttrCase<"adamw", 1>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}

def Dtl_LrSchedule : I32EnumAttr<"LrSchedule", "how the learning rate moves", [
    I32EnumAttrCase<"constant", 0>, I32EnumAttrCase<"warmup", 1>,
    I32EnumAttrCase<"cosine", 2>, I32EnumAttrCase<"warmup_cosine", 3>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}

def Dtl_PipelineSchedule : I32EnumAttr<"PipelineSchedule",
    "the order in which pipeline stages run micro-batches", [
    I32EnumAttrCase<"gpipe", 0>, I32EnumAttrCase<"one_f_one_b", 1, "1f1b">,
    I32EnumAttrCase<"interleaved", 2>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}

def Dtl_Precision : I32EnumAttr<"Precision", "how reals are stored and multiplied", [
    I32EnumAttrCase<"f32", 0>, I32EnumAttrCase<"f64", 1>, I32EnumAttrCase<"bf16", 2>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}

def Dtl_DataSourceKind : I32EnumAttr<"DataSourceKind", "where training data comes from", [
    I32EnumAttrCase<"idx", 0>, I32EnumAttrCase<"synthetic", 1>, I32EnumAttrCase<"tokens", 2>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}

def Dtl_Target : I32EnumAttr<"Target", "the machine a program is planned for", [
    I32EnumAttrCase<"cpu", 0>, I32EnumAttrCase<"cuda", 1>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}
def Dtl_TargetAttr : Dtl_EnumAttr<Dtl_Target, "target">;

def Dtl_PlaceKind : I32EnumAttr<"PlaceKind", "where a value's bytes live", [
    I32EnumAttrCase<"arena", 0>, I32EnumAttrCase<"result", 1>, I32EnumAttrCase<"slice", 2>,
    I32EnumAttrCase<"view", 3>]> {
  let cppNamespace = "::dtl";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

// An enum parameter that may be left out (at its default).
class Dtl_EnumParam<EnumInfo info, string default> : EnumParameter<info> {
  let defaultValue = default;
}

// A double written so that it reads back exactly.
class Dtl_F64Param<string default> : DefaultValuedParameter<"::dtl::F64", default> {
  let comparator = "double($_lhs) == double($_rhs)";
  let parser = "::dtl::parseF64($_parser)";
  let printer = "::dtl::printF64($_printer, $_self)";
}

//===----------------------------------------------------------------------===//
// Sharding and mesh
//===----------------------------------------------------------------------===//

def Dtl_ShardingAttr : AttrDef<Dtl_Dialect, "Sharding"> {
  let mnemonic = "sharding";
  let summary = "How a tensor is laid out over the mesh.";
  let description = [{
    For each tensor dimension, the list of mesh axes (indices into the
    `shard.grid` dimensions, major to minor) that split it; an empty list
    means the dimension is replicated. `partial` lists the mesh axes over
    which the local values are partial sums that still need a reduction
    (only the partitioner produces these).

    ```mlir
    #dtl.sharding<@mesh, [[0], []]>              // rows split over axis 0
    #dtl.sharding<@mesh, [[], []], partial [0]>  // replicated shape, partial sum over axis 0
    ```
  }];
  let parameters = (ins
    "::mlir::FlatSymbolRefAttr":$grid,
    ArrayRefParameter<"::mlir::DenseI16ArrayAttr">:$dims,
    "::mlir::DenseI16ArrayAttr":$partial
  );
  let hasCustomAssemblyFormat = 1;
  let extraClassDeclaration = [{
    /// The mesh axes that split dimension `dim`.
    ::llvm::ArrayRef<int16_t> axesOf(unsigned dim) const {
      return getDims()[dim].asArrayRef();
    }
    bool isFullyReplicated() const;
    static ShardingAttr get(::mlir::MLIRContext *ctx, ::llvm::StringRef grid,
                            ::llvm::ArrayRef<::llvm::SmallVector<int16_t>> dims,
                            ::llvm::ArrayRef<int16_t> partial = {});
  }];
}

def Dtl_MeshAttr : AttrDef<Dtl_Dialect, "Mesh"> {
  let mnemonic = "mesh";
  let summary = "The device mesh: its grid, and each axis's name and size.";
  let description = [{
    On the module (`dtl.mesh`), naming the `shard.grid` that shardings and
    collectives refer to; the grid's shape must be the sizes here.

    ```mlir
    #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>
    ```
  }];
  let parameters = (ins
    "::mlir::FlatSymbolRefAttr":$grid,
    ArrayRefParameter<"::mlir::StringAttr">:$names,
    ArrayRefParameter<"int64_t">:$sizes
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t size() const;
    /// The number of ranks spanned by `axes`.
    int64_t span(::llvm::ArrayRef<int16_t> axes) const;
    /// The index of the axis called `name`, or -1.
    int64_t axisIndex(::llvm::StringRef name) const;
  }];
}

//===----------------------------------------------------------------------===//
// The training contract
//===----------------------------------------------------------------------===//

def Dtl_InitAttr : AttrDef<Dtl_Dialect, "Init"> {
  let mnemonic = "init";
  let summary = "A param's initializer.";
  let description = [{
    `zeros`, `ones`, `normal(mean, std)` or `uniform(low, high)`; element
    `i` of the global tensor depends only on (seed, the param's name, i).

    ```mlir
    #dtl.init<normal(0.0, 0.02)>
    ```
  }];
  let parameters = (ins
    EnumParameter<Dtl_InitKind>:$kind,
    Dtl_F64Param<"0.0">:$a,
    Dtl_F64Param<"0.0">:$b
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
}

def Dtl_OptimizerAttr : AttrDef<Dtl_Dialect, "Optimizer"> {
  let mnemonic = "optimizer";
  let summary = "The optimizer and its hyper-parameters.";
  let description = [{
    `adamw` (torch.optim.AdamW: `beta1`, `beta2`, `eps`, `weight_decay`) or
    `sgd` (torch.optim.SGD: `momentum`, `weight_decay`); `lr` is the peak
    learning rate the schedule starts from. Parameters at their defaults are
    not printed.

    ```mlir
    #dtl.optimizer<adamw, lr = 6.0e-4, beta2 = 0.95, weight_decay = 0.1>
    ```
  }];
  let parameters = (ins
    EnumParameter<Dtl_OptimizerKind>:$kind,
    Dtl_F64Param<"1e-3">:$lr,
    Dtl_F64Param<"0.9">:$beta1,
    Dtl_F64Param<"0.999">:$beta2,
    Dtl_F64Param<"1e-8">:$eps,
    Dtl_F64Param<"0.0">:$weight_decay,
    Dtl_F64Param<"0.0">:$momentum
  );
  let assemblyFormat = [{
    `<` $kind (`,` struct($lr, $beta1, $beta2, $eps, $weight_decay, $momentum)^)? `>`
  }];
  let genVerifyDecl = 1;
}

def Dtl_DataAttr : AttrDef<Dtl_Dialect, "Data"> {
  let mnemonic = "data";
  let summary = "A data source and the model inputs it feeds.";
  let description = [{
    `idx` (one IDX file per input), `tokens` (one llm.c token shard feeding
    the ids and the next-token targets) or `synthetic` (`classes` class
    centres plus noise, `size` examples).

    ```mlir
    #dtl.data<tokens, inputs = ["idx", "targets"], files = ["train.bin"]>
    ```
  }];
  let parameters = (ins
    EnumParameter<Dtl_DataSourceKind>:$source,
    "::mlir::ArrayAttr":$inputs,
    DefaultValuedParameter<"::mlir::ArrayAttr", "::mlir::ArrayAttr::get($_ctxt, {})">:$files,
    DefaultValuedParameter<"int64_t", "10">:$classes,
    DefaultValuedParameter<"int64_t", "1024">:$size
  );
  let assemblyFormat = "`<` $source `,` struct($inputs, $files, $classes, $size) `>`";
  let genVerifyDecl = 1;
}

def Dtl_TrainAttr : AttrDef<Dtl_Dialect, "Train"> {
  let mnemonic = "train";
  let summary = "The train section: data, schedule, steps, logging, ZeRO, precision.";
  let description = [{
    On the module (`dtl.train`). The learning rate follows `schedule` from
    the optimizer's `lr` (`warmup` steps of linear warmup, a cosine decay to
    `min_lr`). `zero` is the ZeRO stage (0-3) over the data axes.
    `accumulate` micro-batches (the model's batch each) make one step: their
    gradients are summed before the one reduction and update of the step.
    A model with a pipelined `repeat` runs them through its stages in the
    order `pipeline` names (`gpipe`: all forwards, then all backwards;
    `1f1b`: one forward, one backward once the pipeline is full;
    `interleaved`: Megatron's interleaved 1F1B over the repeat's
    `virtual_stages`).
    With `memory_limit` (bytes per rank; 0: none) dtlc recomputes in the
    backward as little as makes the step's plan fit.
    `precision` is how reals are stored and multiplied (f64 on the CPU for
    gradient checks; bf16: bf16 storage with f32 masters on the CPU, bf16
    GEMM math on the GPU); `reduce_precision` is the type gradients are
    summed in by collectives (bf16 halves their bytes; only with
    `precision = bf16`). `clip_grad_norm` scales
    every gradient by `min(1, clip / global norm)` (0: no clipping); a step
    whose loss or gradient norm is not finite skips its update, and
    `max_skipped_steps` of them in a row stop the run. Every
    `checkpoint_every` steps (0: never) the whole training state is written
    under `checkpoint_dir`, keeping the newest `keep_last` (0: all).

    ```mlir
    #dtl.train<data = #dtl.data<synthetic, inputs = ["x", "y"]>, steps = 200, seed = 7>
    ```
  }];
  let parameters = (ins
    OptionalParameter<"::dtl::DataAttr">:$data,
    OptionalParameter<"::dtl::DataAttr">:$eval,
    DefaultValuedParameter<"int64_t", "100">:$steps,
    DefaultValuedParameter<"int64_t", "10">:$log_every,
    DefaultValuedParameter<"int64_t", "0">:$eval_every,
    DefaultValuedParameter<"int64_t", "0">:$eval_batches,
    DefaultValuedParameter<"int64_t", "0">:$seed,
    Dtl_EnumParam<Dtl_LrSchedule, "::dtl::LrSchedule::constant">:$schedule,
    DefaultValuedParameter<"int64_t", "0">:$warmup,
    Dtl_F64Param<"0.0">:$min_lr,
    DefaultValuedParameter<"int64_t", "0">:$zero,
    DefaultValuedParameter<"int64_t", "1">:$accumulate,
    Dtl_EnumParam<Dtl_PipelineSchedule, "::dtl::PipelineSchedule::one_f_one_b">:$pipeline,
    DefaultValuedParameter<"int64_t", "0">:$memory_limit,
    Dtl_EnumParam<Dtl_Precision, "::dtl::Precision::f32">:$precision,
    Dtl_EnumParam<Dtl_Precision, "::dtl::Precision::f32">:$reduce_precision,
    Dtl_F64Param<"0.0">:$clip_grad_norm,
    DefaultValuedParameter<"int64_t", "10">:$max_skipped_steps,
    DefaultValuedParameter<"int64_t", "0">:$checkpoint_every,
    DefaultValuedParameter<"int64_t", "3">:$keep_last,
    StringRefParameter<"the checkpoint directory", "\"checkpoints\"">:$checkpoint_dir
  );
  let assemblyFormat = [{
    `<` struct($data, $eval, $steps, $log_every, $eval_every, $eval_batches, $seed, $schedule,
               $warmup, $min_lr, $zero, $accumulate, $pipeline, $memory_limit,
               $precision, $reduce_precision, $clip_grad_norm, $max_skipped_steps,
               $checkpoint_every, $keep_last, $checkpoint_dir) `>`
  }];
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// The execution stage
//===----------------------------------------------------------------------===//

def Dtl_PlaceAttr : AttrDef<Dtl_Dialect, "Place"> {
  let mnemonic = "place";
  let summary = "Where one value's bytes live, decided by dtl-plan-buffers.";
  let description = [{
    `arena N`: N bytes into the function's arena (`dtl.arena_bytes`);
    `result K`: written straight into the function's result K (an in-place
    optimizer update); `slice K`: this layer's slice of stacked result K of
    the enclosing `dtl.repeat`; `view`: no bytes of its own (a view of
    another value, or a value computed inside a fused kernel).

    ```mlir
    %0 = dtl.matmul %a, %b {dtl.place = [#dtl.place<arena 4096>]} : ...
    ```
  }];
  let parameters = (ins
    EnumParameter<Dtl_PlaceKind>:$kind,
    DefaultValuedParameter<"int64_t", "0">:$index
  );
  let assemblyFormat = "`<` custom<Place>($kind, $index) `>`";
}

#endif // DTL_ATTRS_TD
