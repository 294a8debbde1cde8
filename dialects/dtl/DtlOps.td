//===- DtlOps.td - dtl operations --------------------------*- tablegen -*-===//

#ifndef DTL_OPS_TD
#define DTL_OPS_TD

include "dialects/dtl/DtlDialect.td"
include "dialects/dtl/DtlAttrs.td"
include "dialects/dtl/DtlInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def Dtl_F32Scalar : 0DTensorOf<[F32]>;

class Dtl_MathOp<string mnemonic, list<Trait> traits = []> :
    Dtl_Op<mnemonic, !listconcat(traits, [Pure,
      DeclareOpInterfaceMethods<Dtl_VjpOpInterface>])>;

//===----------------------------------------------------------------------===//
// Constants, elementwise math
//===----------------------------------------------------------------------===//

def Dtl_ConstantOp : Dtl_Op<"constant", [Pure, Dtl_ShardingRuleOpInterface]> {
  let summary = "A tensor filled with one value.";
  let description = [{
    ```mlir
    %c = dtl.constant 1.0 : tensor<256x10xf32>
    ```
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
}

class Dtl_BinaryOp<string mnemonic, list<Trait> traits = []> :
    Dtl_MathOp<mnemonic, !listconcat(traits, [SameOperandsAndResultType])> {
  let arguments = (ins F32Tensor:$lhs, F32Tensor:$rhs);
  let results = (outs F32Tensor:$result);
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
    Dtl_MathOp<mnemonic, !listconcat(traits, [SameOperandsAndResultType])> {
  let summary = "Elementwise " # math # ".";
  let arguments = (ins F32Tensor:$input);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Dtl_NegOp : Dtl_UnaryOp<"neg", "-x",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface, ["isLinearIn"]>]>;
def Dtl_ReluOp : Dtl_UnaryOp<"relu", "max(x, 0)", [Dtl_ShardingRuleOpInterface]>;
def Dtl_ExpOp : Dtl_UnaryOp<"exp", "e^x", [Dtl_ShardingRuleOpInterface]>;
def Dtl_LogOp : Dtl_UnaryOp<"log", "natural logarithm", [Dtl_ShardingRuleOpInterface]>;
def Dtl_TanhOp : Dtl_UnaryOp<"tanh", "tanh(x)", [Dtl_ShardingRuleOpInterface]>;
def Dtl_SqrtOp : Dtl_UnaryOp<"sqrt", "square root", [Dtl_ShardingRuleOpInterface]>;

def Dtl_ReluGradOp : Dtl_Op<"relu_grad", [Pure, SameOperandsAndResultType,
    Dtl_ShardingRuleOpInterface]> {
  let summary = "The gradient of relu: grad where input > 0, else 0.";
  let arguments = (ins F32Tensor:$input, F32Tensor:$grad);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$input `,` $grad attr-dict `:` type($result)";
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

    ```mlir
    %h2 = dtl.sharding_constraint %h : tensor<256x1024xf32> to #dtl.sharding<@grid, [[0], [1]]>
    ```
  }];
  let arguments = (ins AnyTensor:$input, Dtl_ShardingAttr:$sharding);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input `:` type($result) `to` qualified($sharding) attr-dict";
}

//===----------------------------------------------------------------------===//
// Shape: broadcast and reduction
//===----------------------------------------------------------------------===//

def Dtl_BroadcastOp : Dtl_MathOp<"broadcast",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>]> {
  let summary = "Numpy-style broadcast to a larger shape.";
  let description = [{
    Operand dimension `i` becomes result dimension `dims[i]` (increasing);
    it must have the result's size or size 1 (then it is repeated). Result
    dimensions not in `dims` are new.

    ```mlir
    %b2 = dtl.broadcast %b dims [1] : tensor<1024xf32> -> tensor<256x1024xf32>
    ```
  }];
  let arguments = (ins F32Tensor:$input, DenseI64ArrayAttr:$dims);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$input `dims` $dims attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Dtl_ReduceSumOp : Dtl_MathOp<"reduce_sum",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>]> {
  let summary = "Sum over some dimensions.";
  let description = [{
    Sums `input` over `dims`. With `keep_dims` the reduced dimensions stay
    with size 1; otherwise they are dropped.

    ```mlir
    %s = dtl.reduce_sum %x dims [0] : tensor<256x10xf32> -> tensor<10xf32>
    ```
  }];
  let arguments = (ins F32Tensor:$input, DenseI64ArrayAttr:$dims, UnitAttr:$keep_dims);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$input `dims` $dims attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

def Dtl_MatmulOp : Dtl_MathOp<"matmul",
    [DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                               ["getLoopKinds", "getIndexingMaps", "isLinearIn"]>]> {
  let summary = "Matrix product op(lhs) @ op(rhs) of 2-D tensors.";
  let description = [{
    `op(a)` is `a` transposed when the matching `transpose_*` flag is set,
    so the backward pass never materialises a transpose.

    ```mlir
    %h = dtl.matmul %x, %w : tensor<256x784xf32>, tensor<784x1024xf32> -> tensor<256x1024xf32>
    %dw = dtl.matmul %x, %dh {transpose_lhs} : tensor<256x784xf32>, tensor<256x1024xf32> -> tensor<784x1024xf32>
    ```
  }];
  let arguments = (ins F32Tensor:$lhs, F32Tensor:$rhs,
                   UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Losses and metrics
//===----------------------------------------------------------------------===//

class Dtl_ClassifierOp<string mnemonic, list<Trait> traits = []> :
    Dtl_Op<mnemonic, !listconcat(traits, [Pure,
      DeclareOpInterfaceMethods<Dtl_ShardingRuleOpInterface,
                                ["getLoopKinds", "getIndexingMaps"]>])> {
  let hasVerifier = 1;
}

def Dtl_CrossEntropyOp : Dtl_ClassifierOp<"cross_entropy",
    [DeclareOpInterfaceMethods<Dtl_VjpOpInterface>]> {
  let summary = "Per-example softmax cross-entropy.";
  let description = [{
    `result[b] = logsumexp(logits[b, :]) - logits[b, labels[b]]`; an example
    whose label is negative is ignored (loss 0), which pads partial batches.
  }];
  let arguments = (ins F32Tensor:$logits, I32Tensor:$labels);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->` type($result)";
}

def Dtl_CrossEntropyGradOp : Dtl_ClassifierOp<"cross_entropy_grad"> {
  let summary = "Gradient of cross_entropy with respect to the logits.";
  let description = [{
    `result[b, c] = grad[b] * (softmax(logits[b, :])[c] - (c == labels[b]))`,
    zero for ignored examples.
  }];
  let arguments = (ins F32Tensor:$logits, I32Tensor:$labels, F32Tensor:$grad);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$logits `,` $labels `,` $grad attr-dict `:` type($logits) `,` type($labels) `,` type($grad) `->` type($result)";
}

def Dtl_CorrectOp : Dtl_ClassifierOp<"correct"> {
  let summary = "1 where argmax(logits[b, :]) == labels[b], else 0.";
  let arguments = (ins F32Tensor:$logits, I32Tensor:$labels);
  let results = (outs F32Tensor:$result);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->` type($result)";
}

//===----------------------------------------------------------------------===//
// Optimizer updates (elementwise over a parameter; lr and step are scalars)
//===----------------------------------------------------------------------===//

def Dtl_SgdUpdateOp : Dtl_Op<"sgd_update", [Pure, Dtl_ShardingRuleOpInterface,
    AllTypesMatch<["param", "grad", "momentum_buf", "new_param", "new_momentum_buf"]>]> {
  let summary = "One SGD step with momentum and decoupled weight decay.";
  let description = [{
    `buf' = momentum * buf + grad` (plain `grad` when momentum is 0),
    `param' = param - lr * (buf' + weight_decay * param)`, as torch.optim.SGD
    with `weight_decay` and no dampening.
  }];
  let arguments = (ins F32Tensor:$param, F32Tensor:$grad, F32Tensor:$momentum_buf,
                   Dtl_F32Scalar:$lr, F64Attr:$momentum, F64Attr:$weight_decay);
  let results = (outs F32Tensor:$new_param, F32Tensor:$new_momentum_buf);
  let assemblyFormat = [{
    $param `,` $grad `,` $momentum_buf `,` $lr attr-dict `:` type($param) `,` type($lr)
  }];
}

def Dtl_AdamwUpdateOp : Dtl_Op<"adamw_update", [Pure, Dtl_ShardingRuleOpInterface,
    AllTypesMatch<["param", "grad", "m", "v", "new_param", "new_m", "new_v"]>,
    AllTypesMatch<["lr", "step"]>]> {
  let summary = "One AdamW step (torch.optim.AdamW semantics).";
  let description = [{
    With `t` the 1-based step: `m' = b1 m + (1-b1) g`, `v' = b2 v + (1-b2) g^2`,
    `param' = param (1 - lr wd) - lr (m' / (1-b1^t)) / (sqrt(v' / (1-b2^t)) + eps)`.
  }];
  let arguments = (ins F32Tensor:$param, F32Tensor:$grad, F32Tensor:$m, F32Tensor:$v,
                   Dtl_F32Scalar:$lr, Dtl_F32Scalar:$step,
                   F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps, F64Attr:$weight_decay);
  let results = (outs F32Tensor:$new_param, F32Tensor:$new_m, F32Tensor:$new_v);
  let assemblyFormat = [{
    $param `,` $grad `,` $m `,` $v `,` $lr `,` $step attr-dict `:` type($param) `,` type($lr)
  }];
}

#endif // DTL_OPS_TD
