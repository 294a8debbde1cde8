//===- CudaTarget.cpp - what the CUDA program adds: generated kernels -----===//
//
// Step functions call libdtlrt_cuda (dtlrt/Cuda.h: cuBLASLt GEMMs, row
// kernels, NCCL collectives on a communication stream); a fused chain is one
// generated kernel (the math as a device function of scalars, four-element loads
// and stores where the size allows). The same source builds for the host
// against dtlrt/CudaEmulation.h (dtlc --target=cuda-emulation).
//
//===----------------------------------------------------------------------===//

#include "codegen/StepPrinter.h"

#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace dtl;

namespace {

class CudaTarget final : public PrinterTarget {
public:
  StringRef ns() const override { return "dtlrt::cuda"; }

  std::string prelude() const override {
    return "#ifdef DTLRT_CUDA_EMULATION\n#include \"dtlrt/CudaEmulation.h\"\n#else\n"
           "#include \"dtlrt/Cuda.h\"\n#endif\n#include \"dtlrt/Runtime.h\"\n\n"
           "#include <cstdint>\n#include <vector>\n";
  }

  std::string device(ModuleOp module) const override {
    auto train = module->getAttrOfType<TrainAttr>(attr::train);
    bool bf16 = train && train.getPrecision() == Precision::bf16;
    return std::string("dtlrt::cuda::device(dtlrt::cuda::GemmMath::") + (bf16 ? "BF16" : "F32") +
           ")";
  }

  LogicalResult printFused(StepPrinter &printer, FusedOp fused) override {
    std::string kernel = printer.functionName().str() + "_k" + std::to_string(printer.nextKernel());
    auto result = cast<RankedTensorType>(fused.getType());
    int64_t n = result.getNumElements();
    std::string type = StepPrinter::elementType(result);
    // Four elements per thread, loaded and stored at once (16 bytes of f32,
    // 8 of bf16): a tensor of 4k elements starts at a multiple of 4 even as
    // a layer's view of a stacked one.
    bool vectorized = n % 4 == 0;
    SmallVector<std::string> params, pointers, args;
    for (auto [i, input] : llvm::enumerate(fused.getInputs())) {
      std::string x = "x" + std::to_string(i),
                  inputType = StepPrinter::elementType(input.getType());
      // Computed in f32 whatever the storage: a bf16 load widens here.
      params.push_back(StepPrinter::computeType(input.getType()) + " " + x);
      pointers.push_back("const " + inputType + " *__restrict__ in" + std::to_string(i));
      args.push_back(printer.name(input));
    }
    pointers.push_back(type + " *__restrict__ out");

    // The math once, as a device function of scalars.
    raw_indented_ostream kernels(printer.kernels());
    kernels << "__device__ __forceinline__ " << StepPrinter::computeType(result) << " " << kernel
            << "_f(" << llvm::join(params, ", ") << ") {\n";
    kernels.indent();
    SmallVector<std::string> elements;
    for (size_t i = 0; i < params.size(); ++i)
      elements.push_back("x" + std::to_string(i));
    std::string element = printer.printElement(fused, elements, kernels);
    kernels << "return " << element << ";\n";
    kernels.unindent();
    kernels << "}\n";
    kernels << "__global__ void __launch_bounds__(dtlrt::cuda::kBlock) " << kernel << "("
            << llvm::join(pointers, ", ") << ", int64_t n) {\n";
    kernels.indent();
    kernels << "for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;\n"
            << "     i += int64_t(gridDim.x) * blockDim.x) {\n";
    kernels.indent();
    if (vectorized) {
      static const char fields[] = "xyzw";
      auto lanes = [](Type t) {
        return "dtlrt::cuda::Lanes4<" + StepPrinter::elementType(t) + ">";
      };
      for (auto [i, input] : llvm::enumerate(fused.getInputs())) {
        std::string vector = lanes(input.getType());
        kernels << "const " << vector << " v" << i << " = reinterpret_cast<const " << vector
                << " *>(in" << i << ")[i];\n";
      }
      kernels << lanes(result) << " r;\n";
      for (int lane = 0; lane < 4; ++lane) {
        SmallVector<std::string> values;
        for (size_t i = 0; i < args.size(); ++i)
          values.push_back("v" + std::to_string(i) + "." + fields[lane]);
        kernels << "r." << fields[lane] << " = " << kernel << "_f(" << llvm::join(values, ", ")
                << ");\n";
      }
      kernels << "reinterpret_cast<" << lanes(result) << " *>(out)[i] = r;\n";
    } else {
      SmallVector<std::string> reads;
      for (size_t i = 0; i < args.size(); ++i)
        reads.push_back("in" + std::to_string(i) + "[i]");
      kernels << "out[i] = " << kernel << "_f(" << llvm::join(reads, ", ") << ");\n";
    }
    kernels.unindent();
    kernels << "}\n";
    kernels.unindent();
    kernels << "}\n\n";

    raw_indented_ostream &os = printer.os();
    std::string out = printer.define(fused.getResult());
    int64_t items = vectorized ? n / 4 : n;
    args.push_back(out);
    args.push_back(std::to_string(items));
    os << "DTLRT_CUDA_LAUNCH(" << kernel << ", " << items << ")(" << llvm::join(args, ", ")
       << ");\ndtlrt::cuda::checkLaunch(\"" << kernel << "\");\n";
    return success();
  }

  void printFunctionEnd(raw_indented_ostream &os) const override {
    os << "dtlrt::cuda::joinAll();\n";
  }
};

} // namespace

std::unique_ptr<PrinterTarget> dtl::makeCudaTarget() { return std::make_unique<CudaTarget>(); }
