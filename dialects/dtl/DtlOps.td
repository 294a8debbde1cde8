//===- DtlOps.td - dtl operations --------------------------*- tablegen -*-===//

#ifndef DTL_OPS_TD
#define DTL_OPS_TD

include "dialects/dtl/DtlDialect.td"
include "dialects/dtl/DtlAttrs.td"
include "dialects/dtl/DtlInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ViewLikeInterface.td"

def Dtl_F32Scalar : 0DTensorOf<[F32]>;

// Reals: f32, or bf16 where `precision = bf16` stores a value in half the
// bytes (dtl-mixed-precision); statistics (layernorm's mean and rstd,
// attention's log-sum-exp, losses) and the optimizer's tensors stay f32.
def Dtl_RealTensor : TensorOf<[F32, BF16]>;

// Ops whose result types follow from their operands and attributes by a
// shape rule of their own (`inferReturnTypes`), which the frontend also
// calls to report a user's shape error at its source.
class Dtl_InferredOp<string mnemonic, list<Trait> traits = []> :
    Dtl_Op<mnemonic, !listconcat(traits, [Pure, InferTypeOpAdaptor])>;

// An inferred op whose result may be stored in another real type than its
// operands (a bf16 GEMM writing an f32 gradient, a bf16 sum into f32): the
// results must have the inferred shapes; f32 and bf16 are interchangeable.
class Dtl_MixedRealOp<string mnemonic, list<Trait> traits = []> :
    Dtl_Op<mnemonic, !listconcat(traits, [Pure, InferTypeOpAdaptorWithIsCompatible])>;

class Dtl_MathOp<string mnemonic, list<Trait> traits = []> :
    Dtl_Op<mnemonic, !listconcat(traits, [Pure,
      DeclareOpInterfaceMethods<Dtl_VjpOpInterface>])>;

//===----------------------------------------------------------------------===//
// Constants, elementwise math
//===----------------------------------------------------------------------===//

def Dtl_ConstantOp : Dtl_Op<"constant", [Pure, Dtl_ShardingRuleOpInterface,
    DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "A tensor filled with one value.";
  let description = [{
    ```mlir
    %c = dtl.constant 1.0 : tensor<256x10xf32>
    ```
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
}

class Dtl_BinaryOp<string mnemonic, list<Trait> traits = []> :
    Dtl_MathOp<mnemonic, !listconcat(traits, [SameOperandsAndResultType, Elementwise,
      Dtl_CostOpInterface])> {
  let arguments = (ins Dtl_RealTensor:$lhs, Dtl_RealTensor:$rhs);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Dtl_AddOp : Dtl_BinaryOp<"add", [Commutative,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface, ["isAdditive"]>]> {
  let summary = "Elementwise lhs + rhs (same shapes; the frontend broadcasts).";
}
def Dtl_SubOp : Dtl_BinaryOp<"sub",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface, ["isAdditive"]>]> {
  let summary = "Elementwise lhs - rhs.";
}
def Dtl_MulOp : Dtl_BinaryOp<"mul", [Commutative,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface, ["isLinearIn"]>]> {
  let summary = "Elementwise lhs * rhs.";
}
def Dtl_DivOp : Dtl_BinaryOp<"div",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface, ["isLinearIn"]>]> {
  let summary = "Elementwise lhs / rhs.";
}

class Dtl_UnaryOp<string mnemonic, string math, list<Trait> traits = []> :
    Dtl_MathOp<mnemonic, !listconcat(traits, [SameOperandsAndResultType, Elementwise,
      Dtl_CostOpInterface])> {
  let summary = "Elementwise " # math # ".";
  let arguments = (ins Dtl_RealTensor:$input);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Dtl_NegOp : Dtl_UnaryOp<"neg", "-x",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface, ["isLinearIn"]>]>;
def Dtl_ReluOp : Dtl_UnaryOp<"relu", "max(x, 0)", [Dtl_ShardingRuleOpInterface]>;
def Dtl_ExpOp : Dtl_UnaryOp<"exp", "e^x", [Dtl_ShardingRuleOpInterface]>;
def Dtl_LogOp : Dtl_UnaryOp<"log", "natural logarithm", [Dtl_ShardingRuleOpInterface]>;
def Dtl_TanhOp : Dtl_UnaryOp<"tanh", "tanh(x)", [Dtl_ShardingRuleOpInterface]>;
def Dtl_SqrtOp : Dtl_UnaryOp<"sqrt", "square root", [Dtl_ShardingRuleOpInterface]>;

def Dtl_ReluGradOp : Dtl_Op<"relu_grad", [Pure, SameOperandsAndResultType, Elementwise,
    Dtl_ShardingRuleOpInterface, Dtl_CostOpInterface]> {
  let summary = "The gradient of relu: grad where input > 0, else 0.";
  let arguments = (ins Dtl_RealTensor:$input, Dtl_RealTensor:$grad);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$input `,` $grad attr-dict `:` type($result)";
}

def Dtl_GeluOp : Dtl_UnaryOp<"gelu",
    "GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    [Dtl_ShardingRuleOpInterface]>;

def Dtl_GeluGradOp : Dtl_Op<"gelu_grad", [Pure, SameOperandsAndResultType, Elementwise,
    Dtl_ShardingRuleOpInterface, Dtl_CostOpInterface]> {
  let summary = "The gradient of gelu (tanh form): grad * gelu'(input).";
  let arguments = (ins Dtl_RealTensor:$input, Dtl_RealTensor:$grad);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$input `,` $grad attr-dict `:` type($result)";
}

def Dtl_ConvertOp : Dtl_Op<"convert", [Pure, SameOperandsAndResultShape, Elementwise,
    Dtl_ShardingRuleOpInterface, Dtl_CostOpInterface]> {
  let summary = "Elementwise change of storage type between f32 and bf16.";
  let description = [{
    bf16 keeps f32's sign and exponent and 7 bits of mantissa; f32 to bf16 rounds
    to nearest even. Made by `dtl-mixed-precision` where a bf16 value meets
    an operand kept in f32 (an optimizer update, a loss) or an f32 master
    weight meets a bf16 GEMM.

    ```mlir
    %w16 = dtl.convert %w : tensor<64x64xf32> -> tensor<64x64xbf16>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$input);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

//===----------------------------------------------------------------------===//
// Sharding constraints
//===----------------------------------------------------------------------===//

def Dtl_ShardingConstraintOp : Dtl_MathOp<"sharding_constraint",
    [SameOperandsAndResultType, Dtl_ShardingRuleOpInterface]> {
  let summary = "The value, required to have a given sharding (an identity).";
  let description = [{
    Like JAX's `with_sharding_constraint`: propagation starts from the
    constraint as from an annotated argument (and it wins over what would
    flow in), and the partitioner reshards the input to it. Its gradient is
    the incoming gradient under the same constraint. The frontend makes one
    for `h = expr shard [...];`; ZeRO stage 2 makes one for each gradient.

    A `storage` constraint (ZeRO's) is only where the value is kept: the
    input is resharded to it, but it does not flow backwards into how the
    input is computed (a gradient is computed as without ZeRO, then
    reduce-scattered).

    ```mlir
    %h2 = dtl.sharding_constraint %h : tensor<256x1024xf32> to #dtl.sharding<@grid, [[0], [1]]>
    %g2 = dtl.sharding_constraint %g : tensor<256x1024xf32> to #dtl.sharding<@grid, [[0], []]> {storage}
    ```
  }];
  let arguments = (ins AnyTensor:$input, Dtl_ShardingAttr:$sharding, UnitAttr:$storage);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input `:` type($result) `to` qualified($sharding) attr-dict";
}

//===----------------------------------------------------------------------===//
// Shape: broadcast and reduction
//===----------------------------------------------------------------------===//

def Dtl_BroadcastOp : Dtl_MathOp<"broadcast",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>,
     Dtl_CostOpInterface]> {
  let summary = "Numpy-style broadcast to a larger shape.";
  let description = [{
    Operand dimension `i` becomes result dimension `dims[i]` (increasing);
    it must have the result's size or size 1 (then it is repeated). Result
    dimensions not in `dims` are new.

    ```mlir
    %b2 = dtl.broadcast %b dims [1] : tensor<1024xf32> -> tensor<256x1024xf32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$input, DenseI64ArrayAttr:$dims);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$input `dims` $dims attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Dtl_ReduceSumOp : Dtl_MixedRealOp<"reduce_sum",
    [DeclareOpInterfaceMethods<Dtl_VjpOpInterface>,
     DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>,
     Dtl_CostOpInterface]> {
  let summary = "Sum over some dimensions.";
  let description = [{
    Sums `input` over `dims` (distinct, within its rank). With `keep_dims`
    the reduced dimensions stay with size 1; otherwise they are dropped.

    ```mlir
    %s = dtl.reduce_sum %x dims [0] : tensor<256x10xf32> -> tensor<10xf32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$input, DenseI64ArrayAttr:$dims, UnitAttr:$keep_dims);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$input `dims` $dims attr-dict `:` type($input) `->` type($result)";
  let extraClassDeclaration = [{
    static ::mlir::FailureOr<::mlir::RankedTensorType>
    inferResultType(std::optional<::mlir::Location> loc, ::mlir::RankedTensorType input,
                    ::llvm::ArrayRef<int64_t> dims, bool keepDims);
  }];
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

def Dtl_MatmulOp : Dtl_MixedRealOp<"matmul",
    [DeclareOpInterfaceMethods<Dtl_VjpOpInterface>,
     DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>,
     DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "Matrix product op(lhs) @ op(rhs): lhs [M..., K] (or [K, M]), rhs 2-D.";
  let description = [{
    `op(a)` is `a` transposed when the matching `transpose_*` flag is set,
    so the backward pass never materialises a transpose. An lhs of rank > 2
    is a batch of rows: `[M..., K] @ [K, N] -> [M..., N]`.

    ```mlir
    %h = dtl.matmul %x, %w : tensor<256x784xf32>, tensor<784x1024xf32> -> tensor<256x1024xf32>
    %dw = dtl.matmul %x, %dh {transpose_lhs} : tensor<256x784xf32>, tensor<256x1024xf32> -> tensor<784x1024xf32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$lhs, Dtl_RealTensor:$rhs,
                   UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)";
  let extraClassDeclaration = [{
    static ::mlir::FailureOr<::mlir::RankedTensorType>
    inferResultType(std::optional<::mlir::Location> loc, ::mlir::RankedTensorType lhs,
                    ::mlir::RankedTensorType rhs, bool transposeLhs, bool transposeRhs);
  }];
}

def Dtl_MatmulBiasOp : Dtl_MixedRealOp<"matmul_bias",
    [DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "op(lhs) @ op(rhs) + bias, the bias added to every row.";
  let description = [{
    Made by `dtl-fuse-epilogues` after partitioning from a matmul whose only
    use adds a broadcast bias: the GEMM accumulates onto the bias rows, so
    neither the broadcast nor the sum is a pass over memory of its own.
    Shapes as `dtl.matmul`; `bias` is the result's last dimension.
  }];
  let arguments = (ins Dtl_RealTensor:$lhs, Dtl_RealTensor:$rhs, Dtl_RealTensor:$bias,
                   UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs `,` $bias attr-dict `:` type($lhs) `,` type($rhs) `,` type($bias) `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Row-wise normalisations (over the last dimension)
//===----------------------------------------------------------------------===//

class Dtl_RowOp<string mnemonic, list<Trait> traits = []> :
    Dtl_Op<mnemonic, !listconcat(traits, [Pure,
      DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                                ["getLoopKinds", "getIndexingMaps"]>,
      Dtl_CostOpInterface])>;

def Dtl_SoftmaxOp : Dtl_RowOp<"softmax", [SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Dtl_VjpOpInterface>]> {
  let summary = "Softmax over the last dimension.";
  let arguments = (ins Dtl_RealTensor:$input);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Dtl_SoftmaxGradOp : Dtl_RowOp<"softmax_grad", [SameOperandsAndResultType]> {
  let summary = "Gradient of softmax from its output y: y * (g - sum(g * y)) per row.";
  let arguments = (ins Dtl_RealTensor:$output, Dtl_RealTensor:$grad);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$output `,` $grad attr-dict `:` type($result)";
}

def Dtl_LayerNormOp : Dtl_RowOp<"layernorm", [InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Dtl_VjpOpInterface>, AllTypesMatch<["input", "result"]>,
    AllTypesMatch<["weight", "bias"]>, AllTypesMatch<["mean", "rstd"]>]> {
  let summary = "Layer normalisation over the last dimension, with weight and bias.";
  let description = [{
    `result = (x - mean) * rstd * weight + bias` per row, `rstd =
    1 / sqrt(var + eps)` (biased variance, as torch.nn.LayerNorm). Also
    returns each row's mean and rstd, which the gradient reuses.

    ```mlir
    %y, %mean, %rstd = dtl.layernorm %x, %w, %b {eps = 1.0e-05}
        : tensor<12x64x128xf32>, tensor<128xf32> -> tensor<12x64x128xf32>, tensor<12x64xf32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$input, Dtl_RealTensor:$weight, Dtl_RealTensor:$bias, F64Attr:$eps);
  let results = (outs Dtl_RealTensor:$result, F32Tensor:$mean, F32Tensor:$rstd);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias attr-dict `:` type($input) `,` type($weight) `->`
    type($result) `,` type($mean)
  }];
  let extraClassDeclaration = [{
    /// The result, then the type of mean and rstd (one entry per row).
    static ::mlir::FailureOr<std::pair<::mlir::RankedTensorType, ::mlir::RankedTensorType>>
    inferResultTypes(std::optional<::mlir::Location> loc, ::mlir::RankedTensorType input,
                     ::mlir::RankedTensorType weight, ::mlir::RankedTensorType bias);
  }];
}

def Dtl_LayerNormGradInputOp : Dtl_RowOp<"layernorm_grad_input",
    [AllTypesMatch<["input", "grad", "result"]>, AllTypesMatch<["mean", "rstd"]>]> {
  let summary = "d(loss)/d(input) of layernorm.";
  let description = [{
    With `xhat = (x - mean) * rstd` and `dxhat = grad * weight`:
    `result = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))` per row.
  }];
  let arguments = (ins Dtl_RealTensor:$input, Dtl_RealTensor:$weight, F32Tensor:$mean,
                   F32Tensor:$rstd, Dtl_RealTensor:$grad);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $mean `,` $rstd `,` $grad attr-dict `:` type($input) `,`
    type($weight) `,` type($mean)
  }];
}

def Dtl_LayerNormGradParamsOp : Dtl_Op<"layernorm_grad_params", [Pure,
    AllTypesMatch<["input", "grad"]>, AllTypesMatch<["mean", "rstd"]>,
    AllTypesMatch<["weight_grad", "bias_grad"]>,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                              ["getLoopKinds", "getIndexingMaps"]>,
    DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "d(loss)/d(weight) and d(loss)/d(bias) of layernorm.";
  let description = [{
    `weight_grad = sum over rows of grad * xhat`, `bias_grad = sum over rows
    of grad`; the rows are sum loops, so a batch split leaves partial sums.
  }];
  let arguments = (ins Dtl_RealTensor:$input, F32Tensor:$mean, F32Tensor:$rstd,
                   Dtl_RealTensor:$grad);
  let results = (outs Dtl_RealTensor:$weight_grad, Dtl_RealTensor:$bias_grad);
  let assemblyFormat = [{
    $input `,` $mean `,` $rstd `,` $grad attr-dict `:` type($input) `,` type($mean) `->`
    type($weight_grad)
  }];
}

//===----------------------------------------------------------------------===//
// Embedding and attention
//===----------------------------------------------------------------------===//

def Dtl_EmbeddingOp : Dtl_InferredOp<"embedding", [
    DeclareOpInterfaceMethods<Dtl_VjpOpInterface>,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                              ["getLoopKinds", "getIndexingMaps"]>,
    Dtl_CostOpInterface]> {
  let summary = "Rows of a table picked by integer indices.";
  let description = [{
    `result[i..., c] = table[indices[i...], c]`; an index outside the table
    stops the program with a message.

    The table's rows are a sum loop (`result = sum_v table[v] * (indices ==
    v)`), so a table split by rows needs no gather (Megatron's
    `VocabParallelEmbedding`): after dtl-partition, `row_axes` names the mesh
    axes the rows are split over; a rank holds rows `[j * V', (j + 1) * V')`
    with `j` its index along them, looks up the indices in that block, writes
    zeros for the others, and the partial results are summed.

    ```mlir
    %x = dtl.embedding %wte, %idx : tensor<128x64xf32>, tensor<12x64xi32> -> tensor<12x64x64xf32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$table, I32Tensor:$indices,
                   OptionalAttr<DenseI16ArrayAttr>:$row_axes);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$table `,` $indices attr-dict `:` type($table) `,` type($indices) `->` type($result)";
  let extraClassDeclaration = [{
    static ::mlir::FailureOr<::mlir::RankedTensorType>
    inferResultType(std::optional<::mlir::Location> loc, ::mlir::RankedTensorType table,
                    ::mlir::RankedTensorType indices);
  }];
}

def Dtl_EmbeddingGradOp : Dtl_Op<"embedding_grad", [Pure,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                              ["getLoopKinds", "getIndexingMaps"]>,
    Dtl_CostOpInterface]> {
  let summary = "Gradient of embedding for the table: grad rows added at their indices.";
  let description = [{
    With `row_axes` (set by dtl-partition when the table's rows are split),
    the result is this rank's block of rows, as for `dtl.embedding`: indices
    outside it add nothing.
  }];
  let arguments = (ins I32Tensor:$indices, Dtl_RealTensor:$grad,
                   OptionalAttr<DenseI16ArrayAttr>:$row_axes);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = "$indices `,` $grad attr-dict `:` type($indices) `,` type($grad) `->` type($result)";
}

def Dtl_CausalAttentionOp : Dtl_InferredOp<"causal_attention", [
    AllTypesMatch<["q", "k", "v", "result"]>, DeclareOpInterfaceMethods<Dtl_VjpOpInterface>,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                              ["getLoopKinds", "getIndexingMaps"]>,
    DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "Fused multi-head causal self-attention.";
  let description = [{
    `q`, `k`, `v` are `[B, T, C]` with the channels split into heads of
    `head_dim` channels each: for each batch row, head and position `t`,
    `result[t] = sum_{s <= t} softmax_s(q[t] . k[s] / sqrt(head_dim)) v[s]`.
    Also returns each row's log-sum-exp of the scaled scores, `lse`
    `[B, C / head_dim, T]`, which is all the gradient keeps (as
    FlashAttention does): the kernels work on tiles of query rows and never
    store the `[T, T]` probabilities, so memory is O(B H T), not O(B H T^2).
    Heads are independent, so a split of the channels into whole heads
    (tensor parallelism) needs no communication: a rank's heads are its
    channels divided by `head_dim`.
  }];
  let arguments = (ins Dtl_RealTensor:$q, Dtl_RealTensor:$k, Dtl_RealTensor:$v, I64Attr:$head_dim);
  let results = (outs Dtl_RealTensor:$result, F32Tensor:$lse);
  let assemblyFormat = [{
    $q `,` $k `,` $v attr-dict `:` type($q) `->` type($lse)
  }];
  let extraClassDeclaration = [{
    /// The result (q's type), then the log-sum-exp's.
    static ::mlir::FailureOr<std::pair<::mlir::RankedTensorType, ::mlir::RankedTensorType>>
    inferResultTypes(std::optional<::mlir::Location> loc, ::mlir::RankedTensorType q,
                     ::mlir::RankedTensorType k, ::mlir::RankedTensorType v, int64_t headDim);
  }];
}

def Dtl_CausalAttentionGradOp : Dtl_Op<"causal_attention_grad", [Pure,
    AllTypesMatch<["q", "k", "v", "grad", "q_grad", "k_grad", "v_grad"]>,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                              ["getLoopKinds", "getIndexingMaps"]>,
    DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "Gradients of causal_attention for q, k and v.";
  let description = [{
    Recomputes the probabilities tile by tile from the scores and the
    forward's `lse`, so the backward holds no `[T, T]` tensor either; the
    scores' GEMM is done again (2 B T^2 C more FLOPs than with saved
    probabilities).
  }];
  let arguments = (ins Dtl_RealTensor:$q, Dtl_RealTensor:$k, Dtl_RealTensor:$v, F32Tensor:$lse,
                   Dtl_RealTensor:$grad, I64Attr:$head_dim);
  let results = (outs Dtl_RealTensor:$q_grad, Dtl_RealTensor:$k_grad, Dtl_RealTensor:$v_grad);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $lse `,` $grad attr-dict `:` type($q) `,` type($lse)
  }];
}

//===----------------------------------------------------------------------===//
// Layout: reshape, transpose
//===----------------------------------------------------------------------===//

def Dtl_ReshapeOp : Dtl_MathOp<"reshape",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>,
     DeclareOpInterfaceMethods<ViewLikeOpInterface>,
     DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "The same elements (row-major order) in another shape.";
  let description = [{
    The shapes must match group by group: each run of input dimensions
    merges into one result dimension, or one input dimension splits into a
    run of result dimensions (as tensor.collapse_shape / expand_shape). A
    split of a merged dimension is a split of its leading (major) part, so
    a batch split survives `[B, T, C] -> [B*T, C]`. Free: a view of the
    input's buffer.
  }];
  let arguments = (ins AnyTensor:$input);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The rule, for the verifier and for the frontend's report at the
    /// user's reshape.
    static ::mlir::LogicalResult checkShapes(std::optional<::mlir::Location> loc,
                                             ::mlir::RankedTensorType input,
                                             ::mlir::RankedTensorType result);
  }];
}

def Dtl_StackedSliceOp : Dtl_Op<"stacked_slice",
    [Pure, DeclareOpInterfaceMethods<ViewLikeOpInterface>]> {
  let summary = "Block `index` of a stacked tensor's leading dimension, as a view.";
  let description = [{
    What iteration `index` of a `dtl.repeat` sees of a stacked operand,
    outside the loop: dtl-schedule-pipeline unrolls the micro-batch loop
    and takes each micro-batch's inputs with it. When the result keeps the
    leading dimension (size n), it is slices `[index * n, (index + 1) * n)`:
    the layers of one virtual stage of an interleaved pipeline. Free: a
    view of the input's buffer at the block's offset. Per-rank programs
    only (it has no sharding rule).

    ```mlir
    %x1 = dtl.stacked_slice %x[1] : tensor<4x16x32xf32> -> tensor<16x32xf32>
    %w1 = dtl.stacked_slice %w[1] : tensor<4x32x32xf32> -> tensor<2x32x32xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$index);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `[` $index `]` attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

// Split and concat: pieces of one dimension. With `interleave = n` the
// dimension is n blocks, each the concatenation of its share (1/n) of every
// piece: the order a fused weight such as nanoGPT's `c_attn` is stored in
// when its columns are split n ways (dtl-interleave-splits), so each rank's
// block holds a block of every piece and a split is local.
class Dtl_PiecesOp<string mnemonic> : Dtl_MathOp<mnemonic,
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn", "isAdditive",
                                "getLoopShardDivisors"]>,
     Dtl_CostOpInterface]> {
  let hasVerifier = 1;
}

def Dtl_SplitOp : Dtl_PiecesOp<"split"> {
  let summary = "Consecutive pieces of one dimension (torch.split).";
  let description = [{
    Result `i` is the `i`-th run of `dim` (the results' sizes along it add
    up to the input's; the other dimensions are the input's). With
    `interleave = n`, `dim` is read as n blocks, each holding 1/n of every
    piece in order: piece `i` is the concatenation of its share in each
    block.

    ```mlir
    %q, %k, %v = dtl.split %qkv dim 2 : tensor<8x64x96xf32> -> tensor<8x64x32xf32>, tensor<8x64x32xf32>, tensor<8x64x32xf32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$input, I64Attr:$dim,
                   DefaultValuedAttr<I64Attr, "1">:$interleave);
  let results = (outs Variadic<Dtl_RealTensor>:$results);
  let assemblyFormat = [{
    $input `dim` $dim (`interleave` $interleave^)? attr-dict `:` type($input) `->` type($results)
  }];
}

def Dtl_ConcatOp : Dtl_PiecesOp<"concat"> {
  let summary = "Tensors joined along one dimension (torch.cat).";
  let description = [{
    The inverse of `dtl.split` with the same `dim` and `interleave`: the
    inputs are the pieces, in order.

    ```mlir
    %qkv = dtl.concat %q, %k, %v dim 2 : tensor<8x64x32xf32>, tensor<8x64x32xf32>, tensor<8x64x32xf32> -> tensor<8x64x96xf32>
    ```
  }];
  let arguments = (ins Variadic<Dtl_RealTensor>:$inputs, I64Attr:$dim,
                   DefaultValuedAttr<I64Attr, "1">:$interleave);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = [{
    $inputs `dim` $dim (`interleave` $interleave^)? attr-dict `:` type($inputs) `->` type($result)
  }];
}

def Dtl_TransposeOp : Dtl_InferredOp<"transpose",
    [DeclareOpInterfaceMethods<Dtl_VjpOpInterface>,
     DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>,
     Dtl_CostOpInterface]> {
  let summary = "Permuted dimensions: result dim i is input dim permutation[i].";
  let description = [{
    Reals, or i32 indices (gradient accumulation orders the micro-batches'
    inputs with it).
  }];
  let arguments = (ins TensorOf<[F32, I32]>:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs TensorOf<[F32, I32]>:$result);
  let assemblyFormat = "$input `permutation` $permutation attr-dict `:` type($input) `->` type($result)";
  let extraClassDeclaration = [{
    static ::mlir::FailureOr<::mlir::RankedTensorType>
    inferResultType(std::optional<::mlir::Location> loc, ::mlir::RankedTensorType input,
                    ::llvm::ArrayRef<int64_t> permutation);
  }];
}

//===----------------------------------------------------------------------===//
// Dropout
//===----------------------------------------------------------------------===//

def Dtl_DropoutOp : Dtl_Op<"dropout", [Pure,
    AllTypesMatch<["input", "result"]>,
    DeclareOpInterfaceMethods<Dtl_VjpOpInterface>,
    DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface, ["isLinearIn"]>,
    Dtl_CostOpInterface]> {
  let summary = "Inverted dropout with a mask drawn from (seed, stream, layer, step, global index).";
  let description = [{
    `result = input * mask / (1 - rate)` where element `i` of the global
    tensor is kept when `hash(seed, stream, layer, step, i) >= rate`. Inside
    `dtl.repeat`s, `layers` are the enclosing layer indices (outermost
    first) and `layer_counts` their counts, so each layer draws its own
    mask. The mask depends on nothing else, so every mesh shape and every
    recomputation draws the same one; the gradient applies the same mask.
    `step` is the 1-based training step; in evaluation (step 0) dropout is
    the identity.

    ```mlir
    %y = dtl.dropout %x, %step layers(%i) {layer_counts = array<i64: 4>, rate = 1.0e-01, stream = 0}
        : tensor<12x64x128xf32>, tensor<f32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$input, Dtl_F32Scalar:$step, Variadic<Index>:$layers,
                   F64Attr:$rate, I64Attr:$stream, DenseI64ArrayAttr:$layer_counts);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = [{
    $input `,` $step (`layers` `(` $layers^ `)`)? attr-dict `:` type($input) `,` type($step)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Losses and metrics
//===----------------------------------------------------------------------===//

class Dtl_ClassifierOp<string mnemonic, list<Trait> traits = []> :
    Dtl_Op<mnemonic, !listconcat(traits, [Pure,
      DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                                ["getLoopKinds", "getIndexingMaps"]>,
      Dtl_CostOpInterface])>;

def Dtl_CrossEntropyOp : Dtl_ClassifierOp<"cross_entropy",
    [InferTypeOpAdaptor, DeclareOpInterfaceMethods<Dtl_VjpOpInterface>]> {
  let summary = "Per-example softmax cross-entropy.";
  let description = [{
    `result[b] = logsumexp(logits[b, :]) - logits[b, labels[b]]`; an example
    whose label is negative is ignored (loss 0), which pads partial batches.
  }];
  let arguments = (ins Dtl_RealTensor:$logits, I32Tensor:$labels);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->` type($result)";
  let extraClassDeclaration = [{
    /// One entry per example, for cross_entropy and correct alike.
    static ::mlir::FailureOr<::mlir::RankedTensorType>
    inferResultType(std::optional<::mlir::Location> loc, ::mlir::RankedTensorType logits,
                    ::mlir::RankedTensorType labels);
  }];
}

def Dtl_CrossEntropyGradOp : Dtl_ClassifierOp<"cross_entropy_grad"> {
  let summary = "Gradient of cross_entropy with respect to the logits.";
  let description = [{
    `result[b, c] = grad[b] * (softmax(logits[b, :])[c] - (c == labels[b]))`,
    zero for ignored examples.

    Over logits split along the classes (after dtl-partition), `class_axes`
    names the mesh axes of the split and `lse` gives each row's log-sum-exp
    over all classes (from `dtl.cross_entropy_combine`): the softmax is then
    local, `exp(logits - lse)`, and the label counts on the rank whose block
    holds it.
  }];
  let arguments = (ins Dtl_RealTensor:$logits, I32Tensor:$labels, F32Tensor:$grad,
                   Optional<F32Tensor>:$lse, OptionalAttr<DenseI16ArrayAttr>:$class_axes);
  let results = (outs Dtl_RealTensor:$result);
  let assemblyFormat = [{
    $logits `,` $labels `,` $grad (`lse` $lse^)? attr-dict `:` type($logits) `,` type($labels) `,`
    type($grad) (`,` type($lse)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def Dtl_CrossEntropyPartialOp : Dtl_Op<"cross_entropy_partial", [Pure, Dtl_CostOpInterface]> {
  let summary = "One rank's part of a cross-entropy over logits split along the classes.";
  let description = [{
    Made by dtl-partition for a `cross_entropy` whose logits are split along
    the classes over `class_axes` (Megatron's `vocab_parallel_cross_entropy`).
    `result[0, b]` is the log-sum-exp of the rank's block of row `b`,
    `result[1, b]` the logit of `labels[b]` when that class is in the block,
    else 0. Gathered over the axes, `dtl.cross_entropy_combine` makes the
    loss from the parts: [2, B, T] statistics move, never the logits.

    ```mlir
    %p = dtl.cross_entropy_partial %logits, %labels {class_axes = array<i16: 1>}
        : tensor<8x64x64xf32>, tensor<8x64xi32> -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Dtl_RealTensor:$logits, I32Tensor:$labels, DenseI16ArrayAttr:$class_axes);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->` type($result)";
  let hasVerifier = 1;
}

def Dtl_CrossEntropyCombineOp : Dtl_Op<"cross_entropy_combine", [Pure, Dtl_CostOpInterface]> {
  let summary = "The cross-entropy and log-sum-exp of each row from its ranks' parts.";
  let description = [{
    `parts` is `[2 n, rows...]`: the `dtl.cross_entropy_partial` of `n`
    ranks, gathered along the first dimension. `lse[b]` is the log-sum-exp of
    the ranks' log-sum-exps, `result[b] = lse[b] - (sum of the label logits)`,
    0 where the label is negative. `lse` is what `cross_entropy_grad` needs.
  }];
  let arguments = (ins F32Tensor:$parts, I32Tensor:$labels);
  let results = (outs F32Tensor:$result, F32Tensor:$lse);
  let assemblyFormat = "$parts `,` $labels attr-dict `:` type($parts) `,` type($labels) `->` type($result) `,` type($lse)";
  let hasVerifier = 1;
}

def Dtl_CorrectOp : Dtl_ClassifierOp<"correct", [InferTypeOpAdaptor]> {
  let summary = "1 where argmax(logits[b, :]) == labels[b], else 0.";
  let arguments = (ins Dtl_RealTensor:$logits, I32Tensor:$labels);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->` type($result)";
}

def Dtl_ArgmaxPartialOp : Dtl_Op<"argmax_partial", [Pure, Dtl_CostOpInterface]> {
  let summary = "One rank's maximum and its index over logits split along the classes.";
  let description = [{
    Made by dtl-partition for a `correct` whose logits are split along the
    classes over `class_axes`: `result[0, b]` is the maximum of the rank's
    block of row `b`, `result[1, b]` the (global) class of its first
    occurrence. Gathered over the axes, `dtl.correct_combine` picks the
    row's argmax from the parts.
  }];
  let arguments = (ins Dtl_RealTensor:$logits, DenseI16ArrayAttr:$class_axes);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$logits attr-dict `:` type($logits) `->` type($result)";
  let hasVerifier = 1;
}

def Dtl_CorrectCombineOp : Dtl_Op<"correct_combine", [Pure, Dtl_CostOpInterface]> {
  let summary = "`correct` from its ranks' maxima and their classes.";
  let description = [{
    `parts` is `[2 n, rows...]`: the `dtl.argmax_partial` of `n` ranks,
    gathered along the first dimension. The row's argmax is the class of the
    largest maximum, the first rank's on ties (as the first index of the
    whole row is); `result[b]` is 1 where it is `labels[b]`, else 0.
  }];
  let arguments = (ins F32Tensor:$parts, I32Tensor:$labels);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$parts `,` $labels attr-dict `:` type($parts) `,` type($labels) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Optimizer updates (elementwise over a parameter; lr and step are scalars)
//===----------------------------------------------------------------------===//

def Dtl_LabelKeptOp : Dtl_Op<"label_kept", [Pure, SameOperandsAndResultShape, Elementwise,
    Dtl_ShardingRuleOpInterface, Dtl_CostOpInterface]> {
  let summary = "1 where a label is kept (non-negative), 0 where it is ignored.";
  let description = [{
    Its sum counts the examples a `cross_entropy` mean divides by, as
    PyTorch's `F.cross_entropy(..., ignore_index=-1)` does: the mean is over
    the labels kept, not over all of them.

    ```mlir
    %kept = dtl.label_kept %labels : tensor<8x64xi32> -> tensor<8x64xf32>
    ```
  }];
  let arguments = (ins I32Tensor:$labels);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$labels attr-dict `:` type($labels) `->` type($result)";
}

def Dtl_GradScaleOp : Dtl_Op<"grad_scale", [Pure, SameOperandsAndResultType, Elementwise,
    Dtl_ShardingRuleOpInterface, Dtl_CostOpInterface]> {
  let summary = "What the optimizer multiplies the gradients by.";
  let description = [{
    NaN when the loss or the gradient norm is not finite: the update ops
    then skip the step (params and state unchanged), alike on every rank,
    since both operands are the same everywhere. Else
    `min(1, max_norm / (grad_norm + 1e-6))` (torch's clip_grad_norm_), or
    1 when `max_norm` is 0.
  }];
  let arguments = (ins Dtl_F32Scalar:$loss, Dtl_F32Scalar:$grad_norm, F64Attr:$max_norm);
  let results = (outs Dtl_F32Scalar:$result);
  let assemblyFormat = "$loss `,` $grad_norm attr-dict `:` type($result)";
}

def Dtl_SgdUpdateOp : Dtl_Op<"sgd_update", [Pure, Dtl_ShardingRuleOpInterface,
    AllTypesMatch<["param", "grad", "momentum_buf", "new_param", "new_momentum_buf"]>,
    AllTypesMatch<["lr", "grad_scale"]>,
    DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "One SGD step with momentum and decoupled weight decay.";
  let description = [{
    With `g = grad_scale * grad`: `buf' = momentum * buf + g` (plain `g`
    when momentum is 0), `param' = param - lr * (buf' + weight_decay * param)`,
    as torch.optim.SGD with `weight_decay` and no dampening. A NaN
    `grad_scale` (see `dtl.grad_scale`) skips the step: the results equal
    the operands.
  }];
  let arguments = (ins F32Tensor:$param, F32Tensor:$grad, F32Tensor:$momentum_buf,
                   Dtl_F32Scalar:$lr, Dtl_F32Scalar:$grad_scale, F64Attr:$momentum,
                   F64Attr:$weight_decay);
  let results = (outs F32Tensor:$new_param, F32Tensor:$new_momentum_buf);
  let assemblyFormat = [{
    $param `,` $grad `,` $momentum_buf `,` $lr `,` $grad_scale attr-dict `:` type($param) `,`
    type($lr)
  }];
}

def Dtl_AdamwUpdateOp : Dtl_Op<"adamw_update", [Pure, Dtl_ShardingRuleOpInterface,
    AllTypesMatch<["param", "grad", "m", "v", "new_param", "new_m", "new_v"]>,
    AllTypesMatch<["lr", "step", "grad_scale"]>, DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "One AdamW step (torch.optim.AdamW semantics).";
  let description = [{
    With `t` the 1-based step and `g = grad_scale * grad`:
    `m' = b1 m + (1-b1) g`, `v' = b2 v + (1-b2) g^2`,
    `param' = param (1 - lr wd) - lr (m' / (1-b1^t)) / (sqrt(v' / (1-b2^t)) + eps)`.
    A NaN `grad_scale` (see `dtl.grad_scale`) skips the step: the results
    equal the operands.
  }];
  let arguments = (ins F32Tensor:$param, F32Tensor:$grad, F32Tensor:$m, F32Tensor:$v,
                   Dtl_F32Scalar:$lr, Dtl_F32Scalar:$step, Dtl_F32Scalar:$grad_scale,
                   F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps, F64Attr:$weight_decay);
  let results = (outs F32Tensor:$new_param, F32Tensor:$new_m, F32Tensor:$new_v);
  let assemblyFormat = [{
    $param `,` $grad `,` $m `,` $v `,` $lr `,` $step `,` $grad_scale attr-dict `:` type($param)
    `,` type($lr)
  }];
}

//===----------------------------------------------------------------------===//
// Repeated layers
//===----------------------------------------------------------------------===//

def Dtl_RepeatOp : Dtl_Op<"repeat", [RecursiveMemoryEffects, IsolatedFromAbove,
    AttrSizedOperandSegments, SingleBlock, DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "A body run `count` times: layers of a model, kept as a loop.";
  let description = [{
    A scan (JAX's `lax.scan`): iteration `i` of the body sees the layer
    index `i` (`index`), the carried values (`carry`, the initial values for
    `i = 0`, then what iteration `i - 1` yielded), slice `i` of each
    `stacked` operand (a tensor whose leading dimension is `count`: a
    stacked param) and the `invariant` operands. It yields the next carried
    values, then one slice of each stacked result. The results are the last
    carried values, then the stacked results (`[count, ...]`). With
    `reverse`, `i` runs from `count - 1` down to 0 (a backward pass).

    With `recompute <all>`, the backward saves only each iteration's
    carried input and runs the body again before its gradient (activation
    checkpointing); with `recompute <cheap>` it runs again only what costs
    little (all but GEMMs, attention and inner loops: layernorms, GELUs,
    adds) and saves the rest. The ops it runs again are marked
    `dtl.recomputed`.

    With `pipeline "pp"`, the iterations are split over the mesh axis `pp`
    in consecutive blocks (pipeline stages): its stacked operands and
    results are split over `pp` along their leading dimension. Inside a
    micro-batch loop (`accumulate`), dtl-partition gives each rank its
    stage's iterations and dtl-schedule-pipeline makes the stages pass the
    carried value on with point-to-point sends; anywhere else the stacked
    operands are gathered and every rank runs every iteration.

    With `virtual_stages V` as well (Megatron's interleaved schedule), the
    iterations are V·p chunks of `count / (V·p)`, and stage `r` runs chunks
    `r, p + r, ..., (V - 1)·p + r`: the stacked operands and results are
    stored so that each stage's block holds its chunks, in order (param
    storage `dtl.interleave = [0, p, count / V, ...]`, V pieces). Where the
    repeat runs whole, iteration `i` reads and writes the stacked slice
    stored for layer `i`.

    With `stage_layers [n_0, ..., n_(p-1)]` instead (uneven stages: the
    count does not divide by p), stage `s` runs `n_s` consecutive layers,
    and every stage has `c = max(n_s)` slots: the stacked operands and
    results have `p * c` of them, stage `s`'s layers in the first `n_s` of
    its `c` (param storage `dtl.stage_layers` on the argument), the rest
    holes no iteration reads or writes. Partitioned into stages, the
    repeat has a count of `c`, each rank's `c` slots, and
    dtl-schedule-pipeline runs `n_s` of them (the stage's gradients are
    zero in its holes).

    With `accumulate`, what the body yields after the carried values is
    summed over the iterations instead of stacked: those results have the
    yielded type. Gradient accumulation is such a loop over micro-batches
    (the inputs stacked, the params invariant, the loss and gradients
    summed); a sum the partitioner leaves partial stays partial through the
    loop, so it is reduced once after it, not once per micro-batch.

    `h = repeat L layer(x)` is one `dtl.repeat` whose body is the block,
    written once whatever L is; autodiff makes its backward a reverse
    `dtl.repeat` that reads what the forward saved as stacked results; the
    partitioner partitions the body once (every layer has the same
    layouts); codegen prints a loop.

    ```mlir
    %h, %saved = dtl.repeat 4 carry(%x : tensor<8x16xf32>) stacked(%w : tensor<4x16x16xf32>)
        -> (tensor<8x16xf32>, tensor<4x8x16xf32>) {
    ^bb0(%i: index, %xi: tensor<8x16xf32>, %wi: tensor<16x16xf32>):
      %y = dtl.matmul %xi, %wi : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
      dtl.yield %y, %xi : tensor<8x16xf32>, tensor<8x16xf32>
    }
    ```
  }];
  let arguments = (ins I64Attr:$count, UnitAttr:$reverse, UnitAttr:$accumulate,
                   OptionalAttr<Dtl_RecomputeAttr>:$recompute, OptionalAttr<StrAttr>:$pipeline,
                   OptionalAttr<ConfinedAttr<I64Attr, [IntMinValue<2>]>>:$virtual_stages,
                   OptionalAttr<DenseI64ArrayAttr>:$stage_layers,
                   Variadic<AnyType>:$inits,
                   Variadic<AnyRankedTensor>:$stacked, Variadic<AnyType>:$invariants);
  let results = (outs Variadic<AnyType>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $count (`reverse` $reverse^)? (`accumulate` $accumulate^)? (`recompute` $recompute^)? (`pipeline` $pipeline^)?
    (`virtual_stages` $virtual_stages^)? (`stage_layers` $stage_layers^)? (`carry` `(` $inits^ `:` type($inits) `)`)?
    (`stacked` `(` $stacked^ `:` type($stacked) `)`)?
    (`invariant` `(` $invariants^ `:` type($invariants) `)`)?
    (`->` `(` type($results)^ `)`)? $body attr-dict-with-keyword
  }];
  let hasRegionVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    ::mlir::Block &getBodyBlock() { return getBody().front(); }
    /// Whether the iterations run as pipeline stages: the repeat is
    /// pipelined and inside a micro-batch loop (which dtl-schedule-pipeline
    /// schedules). Elsewhere a pipelined repeat runs whole on every rank.
    bool runsAsStages();
    /// Where iteration `layer`'s stacked slices are stored, running whole
    /// (not as stages) on a mesh that splits the pipeline axis `stages`
    /// ways: `layer` unless the repeat has virtual stages or uneven stages.
    int64_t storedLayer(int64_t layer, int64_t stages);
    /// The stacked operands' and results' leading dimension: the count,
    /// unless the stages are uneven (`stage_layers`): every stage's slots
    /// (running whole), or one stage's (as stages).
    int64_t slots();
    /// The body's block arguments, by kind.
    ::mlir::BlockArgument getIndex() { return getBodyBlock().getArgument(0); }
    ::mlir::Block::BlockArgListType getCarryArgs() {
      return getBodyBlock().getArguments().slice(1, getInits().size());
    }
    ::mlir::Block::BlockArgListType getStackedArgs() {
      return getBodyBlock().getArguments().slice(1 + getInits().size(), getStacked().size());
    }
    ::mlir::Block::BlockArgListType getInvariantArgs() {
      return getBodyBlock().getArguments().take_back(getInvariants().size());
    }
    /// The results, by kind. With `accumulate`, the "stacked" results are
    /// sums of what each iteration yields for them.
    ::mlir::ResultRange getCarryResults() { return getResults().take_front(getInits().size()); }
    ::mlir::ResultRange getStackedResults() { return getResults().drop_front(getInits().size()); }
    /// The body's terminator.
    YieldOp getYield();
  }];
}

def Dtl_YieldOp : Dtl_Op<"yield", [Pure, ReturnLike, Terminator,
    ParentOneOf<["RepeatOp", "FusedOp"]>]> {
  let summary = "What a region yields to its op.";
  let description = [{
    In a `dtl.repeat`: the next carried values, then one slice of each
    stacked result. In a `dtl.fused`: the element of the result.
  }];
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
  let builders = [OpBuilder<(ins), [{ build($_builder, $_state, ::mlir::ValueRange()); }]>];
}

//===----------------------------------------------------------------------===//
// The execution stage (after partitioning)
//===----------------------------------------------------------------------===//

def Dtl_FusedOp : Dtl_Op<"fused", [RecursiveMemoryEffects, IsolatedFromAbove, SingleBlock,
    DeclareOpInterfaceMethods<Dtl_CostOpInterface, ["getCost"]>]> {
  let summary = "A chain of elementwise ops computed in one loop or kernel.";
  let description = [{
    Made by `dtl-fuse-elementwise`. The body computes one element of the
    result from one element of each input (rank-0 block arguments, the same
    dtl ops on rank-0 tensors) and yields it; every input has the result's
    shape. So each input is read once and the result written once, however
    long the chain: one OpenMP loop on the CPU, one generated kernel on the
    GPU.

    ```mlir
    %t = dtl.fused(%h) : (tensor<128x64xf32>) -> tensor<128x64xf32> {
    ^bb0(%x: tensor<f32>):
      %0 = dtl.mul %x, %x : tensor<f32>
      %1 = dtl.tanh %0 : tensor<f32>
      dtl.yield %1 : tensor<f32>
    }
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs);
  let results = (outs AnyRankedTensor:$result);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "`(` $inputs `)` `:` functional-type($inputs, $result) $body attr-dict-with-keyword";
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::Block &getBodyBlock() { return getBody().front(); }
  }];
}

def Dtl_CollectiveWaitOp : Dtl_Op<"collective_wait", [Pure,
    AllTypesMatch<["pending", "result"]>, DeclareOpInterfaceMethods<ViewLikeOpInterface>]> {
  let summary = "Where compute waits for an asynchronous collective's result.";
  let description = [{
    Made by `dtl-schedule-collectives`: the collective producing `pending`
    (a `shard` op with a `dtl.slot`) is started where it stands, and the
    compute stream waits for it here, before the first op that reads the
    result; the CPU target waits at once. `reads` are the collective's
    inputs, which the communication stream reads until this point: listing
    them keeps their buffers alive until then. The result is the pending
    buffer itself (a view).

    ```mlir
    %g = shard.all_reduce %p on @grid grid_axes = [0] {dtl.slot = 2 : i64} : tensor<64xf32> -> tensor<64xf32>
    %h = dtl.collective_wait %g reads(%p : tensor<64xf32>) : tensor<64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$pending, Variadic<AnyRankedTensor>:$reads);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $pending (`reads` `(` $reads^ `:` type($reads) `)`)? attr-dict `:` type($result)
  }];
}

#endif // DTL_OPS_TD
