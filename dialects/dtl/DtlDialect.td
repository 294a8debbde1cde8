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

    The training contract is typed: the module carries `dtl.model` (the
    model function), `dtl.mesh` (`#dtl.mesh`), `dtl.optimizer`
    (`#dtl.optimizer`) and `dtl.train` (`#dtl.train`); function arguments
    and results carry `dtl.role` (`#dtl.role`), `dtl.name`, `dtl.init`
    (`#dtl.init`, params only) and `dtl.sharding` (`#dtl.sharding`). The
    dialect verifies each where it is attached.
  }];
  let useDefaultAttributePrinterParser = 1;
  // The contract's attributes are checked where they are attached.
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Registers the attributes (DtlAttrs.cpp, where their storage is).
    void registerAttributes();
  }];
  let dependentDialects = ["::mlir::shard::ShardDialect", "::mlir::func::FuncDialect"];
}

class Dtl_Op<string mnemonic, list<Trait> traits = []> :
    Op<Dtl_Dialect, mnemonic, traits>;

#endif // DTL_DIALECT_TD
