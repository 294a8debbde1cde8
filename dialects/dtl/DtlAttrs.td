//===- DtlAttrs.td - dtl attributes ------------------------*- tablegen -*-===//

#ifndef DTL_ATTRS_TD
#define DTL_ATTRS_TD

include "dialects/dtl/DtlDialect.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

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

#endif // DTL_ATTRS_TD
