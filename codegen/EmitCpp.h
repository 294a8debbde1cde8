//===- EmitCpp.h - partitioned dtl module -> C++ for the CPU ----*- C++ -*-===//

#ifndef DTL_CODEGEN_EMITCPP_H
#define DTL_CODEGEN_EMITCPP_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace dtl {

struct CppOptions {
  std::string sourceFile; ///< the .dtl file, for messages of the program
  bool f64 = false;       ///< compute in double (gradient checks)
};

/// Writes one C++ translation unit holding the step functions of a
/// partitioned module (train_step, the model's forward for evaluation, its
/// gradient) and a main() that hands them to libdtlrt.
mlir::LogicalResult emitCpp(mlir::ModuleOp module, const CppOptions &options,
                            llvm::raw_ostream &os);

} // namespace dtl

#endif // DTL_CODEGEN_EMITCPP_H
