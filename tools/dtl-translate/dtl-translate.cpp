//===- dtl-translate.cpp - the execution IR as C++ (mlir-translate style) -===//
//
// dtl-translate --dtl-to-cpp | --dtl-to-cuda in.mlir: the printers, from a
// module at the execution stage, so codegen tests can start from `.mlir`.
//
//===----------------------------------------------------------------------===//

#include "codegen/Printer.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  dtl::registerTranslations();
  return mlir::failed(mlir::mlirTranslateMain(argc, argv, "dtl translation driver\n"));
}
