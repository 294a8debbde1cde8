//===- Printer.h - the execution IR as C++ or CUDA C++ ----------*- C++ -*-===//
//
// The printers read a module at the execution stage (after dtl-plan-buffers:
// fused loops, places, collective waits and in-place updates are all in the
// IR) and print it; they decide nothing. Registered as the translations
// `dtl-to-cpp` and `dtl-to-cuda` (dtl-translate), so codegen tests can start
// from `.mlir`.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_CODEGEN_PRINTER_H
#define DTL_CODEGEN_PRINTER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace dtl {

/// Which program to print: C++ over libdtlrt (OpenBLAS, MPI) or CUDA C++
/// over libdtlrt_cuda (cuBLASLt, NCCL).
enum class PrintTarget { Cpu, Cuda };

/// Writes one translation unit: the step functions of the module (the
/// model's forward for evaluation, its gradient, train_step) and a main()
/// that hands them to libdtlrt. `sourceFile` names the .dtl file in the
/// program's messages (default: the model function's location). The module
/// must have been planned for the same target.
mlir::LogicalResult printProgram(mlir::ModuleOp module, PrintTarget target, llvm::raw_ostream &os,
                                 llvm::StringRef sourceFile = "");

/// `file:line:col` of the first file position in `loc` (through fused and
/// named locations), or "": where in the .dtl source an op comes from.
std::string sourcePosition(mlir::Location loc);

/// Registers the translations dtl-to-cpp and dtl-to-cuda.
void registerTranslations();

} // namespace dtl

#endif // DTL_CODEGEN_PRINTER_H
