//===- Translate.cpp - dtl-to-cpp and dtl-to-cuda translations ------------===//

#include "codegen/Printer.h"

#include "dialects/dtl/DtlOps.h"

#include "mlir/Tools/mlir-translate/Translation.h"

using namespace mlir;

void dtl::registerTranslations() {
  auto dialects = [](DialectRegistry &registry) {
    registry.insert<DtlDialect, func::FuncDialect, shard::ShardDialect>();
  };
  TranslateFromMLIRRegistration cpp(
      "dtl-to-cpp", "the execution IR as C++ for the CPU (libdtlrt)",
      [](Operation *op, raw_ostream &os) {
        return printProgram(cast<ModuleOp>(op), PrintTarget::Cpu, os);
      },
      dialects);
  TranslateFromMLIRRegistration cuda(
      "dtl-to-cuda", "the execution IR as CUDA C++ (libdtlrt_cuda)",
      [](Operation *op, raw_ostream &os) {
        return printProgram(cast<ModuleOp>(op), PrintTarget::Cuda, os);
      },
      dialects);
}
