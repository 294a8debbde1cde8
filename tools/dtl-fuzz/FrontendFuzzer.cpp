//===- FrontendFuzzer.cpp - libFuzzer over .dtl sources -------------------===//
//
// Each input is a .dtl file: parsed, imports resolved (relative to a file
// in the current directory), lowered to the dtl dialect and run through the
// pipeline up to partitioning, as `dtlc --emit=partitioned` does. Besides
// crashes, hangs and memory (libFuzzer's own findings, with ASan and UBSan
// in the DTL_SANITIZE build), two things count as bugs and abort:
//   - the frontend accepts an input and builds IR that does not verify;
//   - an error is reported without a source position (file:line:col), the
//     way an IR dump reaches the user.
// scripts/fuzz.sh builds and runs it with the seed corpus and dictionary.
//
//===----------------------------------------------------------------------===//

#include "dialects/dtl/Contract.h"
#include "dialects/dtl/DtlOps.h"
#include "frontend/MLIRGen.h"
#include "frontend/Parser.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace mlir;

namespace {

MLIRContext &context() {
  static MLIRContext *ctx = [] {
    DialectRegistry registry;
    registry.insert<dtl::DtlDialect, func::FuncDialect, shard::ShardDialect>();
    auto *c = new MLIRContext(registry);
    c->loadAllAvailableDialects();
    // Errors print nothing: the run would drown in them. An error without a
    // source position is a finding (see above).
    c->printOpOnDiagnostic(false);
    c->getDiagEngine().registerHandler([](Diagnostic &d) {
      if (d.getSeverity() == DiagnosticSeverity::Error && !isa<FileLineColLoc>(d.getLocation()) &&
          !isa<FusedLoc, NameLoc, CallSiteLoc>(d.getLocation())) {
        llvm::errs() << "dtl-fuzz: an error without a source position: " << d.str() << "\n";
        std::abort();
      }
      return success();
    });
    return c;
  }();
  return *ctx;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  MLIRContext &ctx = context();
  std::string source(reinterpret_cast<const char *>(data), size);
  bool errors = false;
  auto onError = [&](dtl::ast::Pos, const std::string &) { errors = true; };
  std::unique_ptr<dtl::ast::Program> program = dtl::parseProgram(source, onError);
  if (!program || errors || !dtl::resolveImports(*program, "fuzz.dtl", onError) || errors)
    return 0;
  OwningOpRef<ModuleOp> module = dtl::mlirGen(ctx, *program, "fuzz.dtl", {});
  if (!module)
    return 0;
  if (failed(verify(*module))) {
    llvm::errs() << "dtl-fuzz: the frontend built IR that does not verify\n";
    std::abort();
  }
  if (!(*module)->hasAttr(dtl::attr::train))
    return 0;
  PassManager pm(&ctx);
  dtl::PipelineOptions pipeline;
  pipeline.stage = dtl::Stage::Partitioned;
  dtl::buildPipeline(pm, pipeline);
  (void)pm.run(*module);
  return 0;
}
