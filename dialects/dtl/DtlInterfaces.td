//===- DtlInterfaces.td - per-op knowledge as interfaces ---*- tablegen -*-===//
//
// What the generic passes ask of each op: its gradient, its sharding rule
// and its cost.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_INTERFACES_TD
#define DTL_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Dtl_VjpOpInterface : OpInterface<"VjpOpInterface"> {
  let cppNamespace = "::dtl";
  let description = [{
    The vector-Jacobian product of an op: given the gradients of its results
    (null where a result does not reach the loss), build the gradients of its
    operands (null for operands with no gradient, such as integer labels).
  }];
  let methods = [
    InterfaceMethod<"Builds the operand gradients after the op.",
      "void", "buildVjp",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ValueRange":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>,
  ];
}

def Dtl_ShardingRuleOpInterface : OpInterface<"ShardingRuleOpInterface"> {
  let cppNamespace = "::dtl";
  let description = [{
    The sharding rule of an op, in the style of GSPMD/Shardy factors: the op
    iterates over a loop nest; each operand and result dimension is indexed
    by one loop (an affine dim) or by nothing (a constant 0: a size-1 or
    broadcast dimension, which is never split). A loop is `parallel`
    (splitting it splits the work), `sum` (a sum reduction: splitting it
    makes the results partial sums) or `whole` (the op needs it unsplit,
    e.g. the class dimension of a softmax). The default is the elementwise
    rule: one parallel loop per result dimension, identity maps, and scalar
    (rank-0) operands broadcast. Operands that are not tensors (a layer
    index) get a map to no dimension.
  }];
  let methods = [
    InterfaceMethod<"Kinds of the loops, in loop order.",
      "::llvm::SmallVector<::dtl::LoopKind>", "getLoopKinds", (ins), "",
      [{ return ::dtl::elementwiseLoopKinds($_op.getOperation()); }]>,
    InterfaceMethod<"One map per operand, then one per result (loops -> dims).",
      "::llvm::SmallVector<::mlir::AffineMap>", "getIndexingMaps", (ins), "",
      [{ return ::dtl::elementwiseIndexingMaps($_op.getOperation()); }]>,
    InterfaceMethod<[{Whether the op is linear in operand `index` with the
      others fixed (f(a + b, c) = f(a, c) + f(b, c)): a partial sum flows
      through it unreduced when it is the only partial operand.}],
      "bool", "isLinearIn", (ins "unsigned":$index), "",
      [{ return false; }]>,
    InterfaceMethod<[{Per loop, a count its number of shards must divide
      (0: any; empty: no loop is limited). An interleaved `dtl.split`'s
      dimension splits into blocks of whole pieces only as many ways as it
      has blocks.}],
      "::llvm::SmallVector<int64_t>", "getLoopShardDivisors", (ins), "",
      [{ return {}; }]>,
    InterfaceMethod<[{Whether the op is additive (f(a + b, c + d) =
      f(a, c) + f(b, d)): partial sums flow through it unreduced when every
      operand is partial over the same axes.}],
      "bool", "isAdditive", (ins), "", [{ return false; }]>,
  ];
}

def Dtl_CostOpInterface : OpInterface<"CostOpInterface"> {
  let cppNamespace = "::dtl";
  let description = [{
    What one execution of an op costs, from its (local) types: floating
    point operations, those of them done by matrix products (GEMMs, what a
    GPU's tensor cores do), and bytes read and written with `realBytes` per
    real. `--explain` sums it over a step. The default is one operation per
    element of the largest result and every operand read and result
    written once.
  }];
  let methods = [
    InterfaceMethod<"The op's cost.",
      "::dtl::OpCost", "getCost", (ins "int64_t":$realBytes), "",
      [{ return ::dtl::elementwiseCost($_op.getOperation(), realBytes); }]>,
  ];
}

#endif // DTL_INTERFACES_TD
