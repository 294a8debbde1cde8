//===- DtlDialect.td - the dtl dialect ---------------------*- tablegen -*-===//
//
// The model-level dialect: tensor math with value semantics, seen globally
// (one device's worth of math), plus the training ops.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_DIALECT_TD
#define DTL_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Dtl_Dialect : Dialect {
  let name = "dtl";
  let cppNamespace = "::dtl";
  let summary = "Model-level tensor ops for distributed training.";
  let description = [{
    The `dtl` dialect holds what a `.dtl` model computes, on whole (global)
    tensors with value semantics. Every op carries its own knowledge:
    its gradient (`VjpOpInterface`) and its sharding rule
    (`ShardingRuleOpInterface`), so autodiff, propagation and partitioning
    are generic passes. Shardings are `#dtl.sharding` attributes that refer
    to an upstream `shard.grid` (the mesh).
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::shard::ShardDialect", "::mlir::func::FuncDialect"];
}

class Dtl_Op<string mnemonic, list<Trait> traits = []> :
    Op<Dtl_Dialect, mnemonic, traits>;

#endif // DTL_DIALECT_TD
