//===- CpuTarget.cpp - what the CPU program adds: OpenMP loops ------------===//
//
// Step functions call libdtlrt (dtlrt/Cpu.h: OpenBLAS GEMMs, row kernels,
// MPI collectives); a fused chain is one loop, on all threads when large.
//
//===----------------------------------------------------------------------===//

#include "codegen/StepPrinter.h"

using namespace mlir;
using namespace dtl;

namespace {

/// Elementwise loops of at least this many elements run on all threads.
constexpr int64_t kParallelThreshold = 32768;

class CpuTarget final : public PrinterTarget {
public:
  StringRef ns() const override { return "dtlrt"; }

  std::string prelude() const override {
    return "#include \"dtlrt/Cpu.h\"\n\n#include <cmath>\n#include <cstdint>\n";
  }

  std::string device(ModuleOp) const override { return ""; }

  LogicalResult printFused(StepPrinter &printer, FusedOp fused) override {
    raw_indented_ostream &os = printer.os();
    int64_t n = cast<RankedTensorType>(fused.getType()).getNumElements();
    std::string out = printer.define(fused.getResult());
    if (n >= kParallelThreshold)
      os << "#pragma omp parallel for simd\n";
    os << "for (int64_t i = 0; i < " << n << "; ++i) {\n";
    os.indent();
    SmallVector<std::string> elements;
    for (auto [k, input] : llvm::enumerate(fused.getInputs())) {
      elements.push_back("x" + std::to_string(k));
      os << "const " << StepPrinter::computeType(input.getType()) << " " << elements.back() << " = "
         << printer.name(input) << "[i];\n";
    }
    std::string result = printer.printElement(fused, elements, os);
    os << out << "[i] = " << result << ";\n";
    os.unindent();
    os << "}\n";
    return success();
  }
};

} // namespace

std::unique_ptr<PrinterTarget> dtl::makeCpuTarget() { return std::make_unique<CpuTarget>(); }
