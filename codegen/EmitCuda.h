//===- EmitCuda.h - partitioned dtl module -> CUDA C++ ----------*- C++ -*-===//

#ifndef DTL_CODEGEN_EMITCUDA_H
#define DTL_CODEGEN_EMITCUDA_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace dtl {

struct CudaOptions {
  std::string sourceFile; ///< the .dtl file, for messages of the program
  bool bf16 = false;      ///< GEMMs multiply in bf16 (f32 accumulation and storage)
};

/// Writes one CUDA translation unit (for nvcc) holding generated kernels,
/// the step functions of a partitioned module and a main() that hands them
/// to libdtlrt with libdtlrt_cuda's Device.
mlir::LogicalResult emitCuda(mlir::ModuleOp module, const CudaOptions &options,
                             llvm::raw_ostream &os);

} // namespace dtl

#endif // DTL_CODEGEN_EMITCUDA_H
