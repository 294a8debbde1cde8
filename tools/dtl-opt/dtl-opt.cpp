//===- dtl-opt.cpp - run dtl passes on .mlir files (mlir-opt style) -------===//

#include "dialects/dtl/DtlOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::registerTransformsPasses();
  dtl::registerDtlPasses();
  dtl::registerPipeline();
  mlir::DialectRegistry registry;
  registry.insert<dtl::DtlDialect, mlir::func::FuncDialect, mlir::shard::ShardDialect,
                  mlir::scf::SCFDialect>();
  return mlir::asMainReturnCode(mlir::MlirOptMain(argc, argv, "dtl optimizer driver\n", registry));
}
