//===- dtlc.cpp - the dtl compiler driver ---------------------------------===//
//
// .dtl -> AST -> dtl dialect -> gradients + optimizer -> per-rank program ->
// execution stage (fused loops, buffers, collective waits) -> C++ (CPU) or
// CUDA C++ (GPU) -> executable linked against libdtlrt (and libdtlrt_cuda).
// `--emit` stops at any stage.
//
// Exit codes: 0 success, 1 an error in the user's input, 70 an internal error.
//
//===----------------------------------------------------------------------===//

#include "DtlcConfig.h"
#include "codegen/Explain.h"
#include "codegen/Printer.h"
#include "dialects/dtl/Contract.h"
#include "dialects/dtl/DtlOps.h"
#include "frontend/MLIRGen.h"
#include "frontend/Parser.h"
#include "passes/Passes.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "mlir/Support/ToolUtilities.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

#include <cmath>

using namespace mlir;
namespace cl = llvm::cl;

namespace {

enum class Emit { Ast, Dtl, Grad, Partitioned, Exec, Cpp, Cuda, Exe };
enum ExitCode { kOk = 0, kUserError = 1, kInternalError = 70 };
constexpr unsigned kMaxErrors = 20;

cl::OptionCategory dtlcCategory("dtlc options");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.dtl>"), cl::Required,
                               cl::cat(dtlcCategory));
cl::opt<std::string> outputFile("o",
                                cl::desc("Output file (default: the input's name "
                                         "without .dtl, or stdout for --emit other than exe)"),
                                cl::value_desc("path"), cl::cat(dtlcCategory));
cl::opt<Emit>
    emit("emit", cl::desc("What to produce"), cl::init(Emit::Exe),
         cl::values(clEnumValN(Emit::Ast, "ast", "the syntax tree"),
                    clEnumValN(Emit::Dtl, "dtl", "the dtl dialect, global view (frontend output)"),
                    clEnumValN(Emit::Grad, "grad", "after autodiff: the model and its gradient"),
                    clEnumValN(Emit::Partitioned, "partitioned",
                               "the per-rank program: train_step with its collectives"),
                    clEnumValN(Emit::Exec, "exec",
                               "the execution stage of --target: fused loops, buffer places, "
                               "collective waits, in-place updates"),
                    clEnumValN(Emit::Cpp, "cpp", "the generated C++ (--target=cpu)"),
                    clEnumValN(Emit::Cuda, "cuda", "the generated CUDA C++ (--target=cuda)"),
                    clEnumValN(Emit::Exe, "exe", "an executable (default)")),
         cl::cat(dtlcCategory));
cl::list<std::string> defines("D", cl::desc("Override a model size: -D H=4096"),
                              cl::value_desc("NAME=VALUE"), cl::Prefix, cl::cat(dtlcCategory));
cl::opt<std::string> meshOverride("mesh", cl::desc("Override mesh axis sizes: --mesh dp=4,tp=2"),
                                  cl::value_desc("axis=size,..."), cl::cat(dtlcCategory));
cl::opt<std::string>
    march("march",
          cl::desc("Instruction set of the executables dtlc builds: x86-64-v3 (AVX2 and FMA; "
                   "default), x86-64-v2, x86-64-v4 (AVX-512) or native (this machine's; a program "
                   "may then not run on other CPUs). The program checks it when it starts"),
          cl::init("x86-64-v3"), cl::cat(dtlcCategory));
cl::opt<unsigned> optLevel("O", cl::desc("Optimization level of the host compiler (0-3)"),
                           cl::Prefix, cl::init(3), cl::cat(dtlcCategory));
cl::opt<std::string>
    target("target",
           cl::desc("cpu (default), cuda, or cuda-emulation (the CUDA program built for the host, "
                    "each kernel's grid run thread by thread: tests codegen without a GPU; slow)"),
           cl::init("cpu"), cl::cat(dtlcCategory));
cl::opt<std::string> memoryLimit(
    "memory-limit",
    cl::desc("Bytes per rank the step may plan (40GiB, 1.5TB): recompute in the backward as "
             "little as makes it fit; default: the train section's `memory_limit`"),
    cl::init(""), cl::cat(dtlcCategory));

cl::opt<std::string>
    precision("precision",
              cl::desc("f32, f64 (CPU, for gradient checks) or bf16 (bf16 storage, f32 master "
                       "weights); default: the train section's "
                       "`precision`, else f32"),
              cl::init(""), cl::cat(dtlcCategory));
cl::opt<bool> verifyDiagnostics(
    "verify-diagnostics",
    cl::desc("Check the errors against expected-error comments in the input (for tests)"),
    cl::cat(dtlcCategory));
enum class Explain { None, Text, Json, Trace };
cl::opt<Explain>
    explainMode("explain",
                cl::desc("Instead of compiling, explain the partitioned program: shardings, "
                         "collectives, memory per rank, predicted step time"),
                cl::ValueOptional, cl::init(Explain::None),
                cl::values(clEnumValN(Explain::Text, "", "as text"),
                           clEnumValN(Explain::Text, "text", "as text"),
                           clEnumValN(Explain::Json, "json", "as JSON, for tools"),
                           clEnumValN(Explain::Trace, "trace",
                                      "the predicted timeline as a Chrome trace (JSON; Perfetto "
                                      "and chrome://tracing open it): a row per pipeline stage")),
                cl::cat(dtlcCategory));
cl::list<std::string> links("link",
                            cl::desc("--explain: alpha (us) and beta (GB/s) of a mesh axis's "
                                     "links, e.g. --link dp=15,45"),
                            cl::value_desc("AXIS=ALPHA_US,BETA_GB_PER_S"), cl::cat(dtlcCategory));
cl::opt<double> explainTeraflops("explain-tflops",
                                 cl::desc("--explain: sustained TFLOP/s per rank (default: 40% "
                                          "of an H100's 989 bf16)"),
                                 cl::init(0.4 * 989), cl::cat(dtlcCategory));
cl::opt<int> ranksPerNode("ranks-per-node",
                          cl::desc("--explain: ranks per node (groups within one use NVLink "
                                   "figures)"),
                          cl::init(8), cl::cat(dtlcCategory));
cl::opt<bool> splitInputFile("split-input-file",
                             cl::desc("Treat each '// -----' separated chunk as a file"),
                             cl::cat(dtlcCategory));

/// Parses "NAME=VALUE,..." into `out`; false on a malformed entry.
bool parseAssignments(llvm::ArrayRef<std::string> items, std::map<std::string, int64_t> &out,
                      llvm::StringRef flag) {
  for (llvm::StringRef item : items) {
    auto [name, value] = item.split('=');
    int64_t n;
    if (name.empty() || value.getAsInteger(10, n) || n < 1) {
      llvm::errs() << "dtlc: error: " << flag << " takes NAME=VALUE with a positive integer, not '"
                   << item << "'\n";
      return false;
    }
    out[name.trim().str()] = n;
  }
  return true;
}

/// Builds the executable `exePath` from generated source: `compiler` with
/// its `flags` and the runtime's headers on `sourcePath` (in `language`, or
/// by its extension when empty), linking the `;`-separated `libraries`.
bool buildExecutable(llvm::StringRef compiler, std::vector<std::string> flags,
                     llvm::StringRef sourcePath, llvm::StringRef language, llvm::StringRef exePath,
                     llvm::StringRef libraries) {
  std::vector<std::string> args = {compiler.str(), "-std=c++17", "-O" + std::to_string(optLevel),
                                   "-w"};
  args.insert(args.end(), flags.begin(), flags.end());
  for (llvm::StringRef dir : llvm::split(DTLC_INCLUDE_DIRS, ';'))
    if (!dir.empty())
      args.push_back(("-I" + dir).str());
  // -x LANG ... -x none: the language applies to the source alone.
  if (!language.empty())
    args.insert(args.end(), {"-x", language.str()});
  args.push_back(sourcePath.str());
  if (!language.empty())
    args.insert(args.end(), {"-x", "none"});
  args.push_back("-o");
  args.push_back(exePath.str());
  for (llvm::StringRef lib : llvm::split(libraries, ';'))
    if (!lib.empty())
      args.push_back(lib.str());
  std::vector<llvm::StringRef> argRefs(args.begin(), args.end());
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(compiler, argRefs, std::nullopt, {}, 0, 0, &message);
  if (rc != 0) {
    llvm::errs() << "dtlc: internal error: " << llvm::sys::path::filename(compiler)
                 << " failed on generated code ("
                 << (message.empty() ? "exit " + std::to_string(rc) : message)
                 << "); command: " << llvm::join(args, " ") << "\n";
    return false;
  }
  return true;
}

/// The host C++ compiler on generated C++, linking libdtlrt. With
/// `cudaEmulation`, the source is the CUDA target's, built against the
/// host emulation of libdtlrt_cuda.
bool compileCpp(llvm::StringRef cppPath, llvm::StringRef exePath, bool cudaEmulation = false) {
  std::vector<std::string> flags = {"-march=" + march, "-DDTLRT_MARCH=\"" + march + "\"",
                                    "-fopenmp"};
  if (cudaEmulation)
    flags.push_back("-DDTLRT_CUDA_EMULATION");
  for (llvm::StringRef flag : llvm::split(DTLC_SANITIZE_FLAGS, ' '))
    if (!flag.empty())
      flags.push_back(flag.str());
  return buildExecutable(DTLC_HOST_CXX, flags, cppPath, cudaEmulation ? "c++" : "", exePath,
                         DTLC_LINK_LIBRARIES);
}

/// nvcc on generated CUDA C++ for sm_80 and sm_90, linking libdtlrt_cuda,
/// libdtlrt, cuBLAS(Lt) and NCCL.
bool compileCuda(llvm::StringRef cuPath, llvm::StringRef exePath) {
  return buildExecutable(
      DTLC_NVCC,
      {"-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90"}, cuPath,
      "", exePath, DTLC_CUDA_LINK_LIBRARIES);
}

/// `train` with --memory-limit's figure.
dtl::TrainAttr withMemoryLimit(dtl::TrainAttr t, int64_t memoryLimit) {
  return dtl::TrainAttr::get(t.getContext(), t.getData(), t.getEval(), t.getSteps(),
                             t.getLogEvery(), t.getEvalEvery(), t.getEvalBatches(), t.getSeed(),
                             t.getSchedule(), t.getWarmup(), t.getMinLr(), t.getZero(),
                             t.getAccumulate(), t.getPipeline(), memoryLimit, t.getPrecision(),
                             t.getReducePrecision(), t.getClipGradNorm(), t.getMaxSkippedSteps(),
                             t.getCheckpointEvery(), t.getKeepLast(), t.getCheckpointDir());
}

/// Output goes to -o, else stdout (text) or the input's stem (executables).
std::string outputPath(bool binary) {
  if (!outputFile.empty())
    return outputFile;
  if (!binary)
    return "-";
  return llvm::sys::path::stem(inputFile).str();
}

class Compiler {
public:
  Compiler(MLIRContext &ctx, const dtl::FrontendOptions &options) : ctx_(ctx), options_(options) {}

  /// Compiles one buffer; diagnostics go through the context's handlers.
  ExitCode compile(const llvm::MemoryBuffer &buffer, llvm::raw_ostream &os) {
    llvm::StringRef filename = buffer.getBufferIdentifier();
    bool syntaxErrors = false;
    auto onError = [&](dtl::ast::Pos pos, const std::string &msg) {
      syntaxErrors = true;
      emitError(FileLineColLoc::get(&ctx_, pos.file ? llvm::StringRef(*pos.file) : filename,
                                    pos.line, pos.col),
                msg);
    };
    std::unique_ptr<dtl::ast::Program> program =
        dtl::parseProgram(buffer.getBuffer().str(), onError);
    if (!program || syntaxErrors || !dtl::resolveImports(*program, filename.str(), onError) ||
        syntaxErrors)
      return kUserError;
    if (emit == Emit::Ast) {
      dtl::ast::dump(*program, os);
      return kOk;
    }
    OwningOpRef<ModuleOp> module = dtl::mlirGen(ctx_, *program, filename, options_);
    if (!module)
      return kUserError;
    if (failed(verify(*module))) {
      emitError(module->getLoc(), "internal error: the frontend produced invalid IR");
      return kInternalError;
    }
    if ((explainMode != Explain::None || (emit != Emit::Dtl && emit != Emit::Grad)) &&
        !(*module)->hasAttr(dtl::attr::train)) {
      auto model = (*module)->getAttrOfType<FlatSymbolRefAttr>(dtl::attr::model);
      emitError(module->getLoc()) << "model '" << model.getValue()
                                  << "' has no train section; a training program needs one (train "
                                  << model.getValue() << " on MESH { data ...; optimizer = ...; })";
      return kUserError;
    }
    // --memory-limit overrides the train section's (--precision is the
    // frontend's: it decides what reduce_precision may be).
    auto train = (*module)->getAttrOfType<dtl::TrainAttr>(dtl::attr::train);
    if (train && !memoryLimit.empty()) {
      int64_t limit = train.getMemoryLimit();
      if (!memoryLimit.empty()) {
        std::optional<int64_t> flag = dtl::parseBytes(memoryLimit);
        if (!flag || *flag < 1) {
          llvm::errs() << "dtlc: error: --memory-limit takes a size with a unit (40GiB, 1.5TB), "
                          "not '"
                       << memoryLimit << "'\n";
          return kUserError;
        }
        limit = *flag;
      }
      (*module)->setAttr(dtl::attr::train, withMemoryLimit(train, limit));
    }
    train = (*module)->getAttrOfType<dtl::TrainAttr>(dtl::attr::train);
    dtl::Precision realType = train ? train.getPrecision() : dtl::Precision::f32;
    bool emulated = target == "cuda-emulation";
    bool cuda = emit == Emit::Cuda || (emit != Emit::Cpp && (target == "cuda" || emulated));
    if (cuda && realType == dtl::Precision::f64) {
      llvm::errs() << "dtlc: error: --target=cuda computes in f32 or bf16; f64 (for gradient "
                      "checks) is for --target=cpu\n";
      return kUserError;
    }

    PassManager pm(&ctx_);
    if (failed(applyPassManagerCLOptions(pm)))
      return kUserError;
    applyDefaultTimingPassManagerCLOptions(pm);
    dtl::PipelineOptions pipeline;
    pipeline.stage = emit == Emit::Dtl           ? dtl::Stage::Dtl
                     : emit == Emit::Grad        ? dtl::Stage::Grad
                     : emit == Emit::Partitioned ? dtl::Stage::Partitioned
                                                 : dtl::Stage::Exec;
    bool explaining = explainMode != Explain::None;
    if (explaining)
      pipeline.stage = dtl::Stage::Exec;
    pipeline.target = cuda ? dtl::Target::cuda : dtl::Target::cpu;
    pipeline.annotate = explaining;
    dtl::buildPipeline(pm, pipeline);
    if (pipeline.stage != dtl::Stage::Dtl && failed(dtl::fitMemoryLimit(*module, pipeline)))
      return kUserError;
    // The passes report problems with the user's model at its source
    // locations; anything they reject is the user's to fix.
    if (failed(pm.run(*module)))
      return kUserError;
    if (explaining) {
      dtl::ExplainOptions options{inputFile,
                                  explainMode == Explain::Json,
                                  explainMode == Explain::Trace,
                                  {},
                                  explainTeraflops,
                                  ranksPerNode};
      for (llvm::StringRef link : links) {
        auto [axis, figures] = link.split('=');
        auto [alpha, beta] = figures.split(',');
        double a, b;
        if (axis.empty() || alpha.getAsDouble(a) || beta.getAsDouble(b) || a < 0 || b <= 0) {
          llvm::errs() << "dtlc: error: --link takes AXIS=ALPHA_US,BETA_GB_PER_S, not '" << link
                       << "'\n";
          return kUserError;
        }
        options.links[axis.str()] = {a * 1e-6, b * 1e9, "--link"};
      }
      return succeeded(dtl::explain(*module, options, os)) ? kOk : kInternalError;
    }
    if (emit == Emit::Dtl || emit == Emit::Grad || emit == Emit::Partitioned ||
        emit == Emit::Exec) {
      module->print(os);
      return kOk;
    }
    auto emitSource = [&](llvm::raw_ostream &out) {
      return dtl::printProgram(*module, cuda ? dtl::PrintTarget::Cuda : dtl::PrintTarget::Cpu, out,
                               inputFile);
    };
    if (emit == Emit::Cpp || emit == Emit::Cuda)
      return succeeded(emitSource(os)) ? kOk : kInternalError;

    std::string exePath = outputPath(true);
    llvm::StringRef exeDir = llvm::sys::path::parent_path(exePath);
    if (!exeDir.empty() && !llvm::sys::fs::is_directory(exeDir)) {
      llvm::errs() << "dtlc: error: cannot write '" << exePath << "': no directory '" << exeDir
                   << "'\n";
      return kUserError;
    }
    llvm::SmallString<128> cppPath;
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("dtlc", cuda ? "cu" : "cpp", cppPath)) {
      llvm::errs() << "dtlc: error: cannot create a temporary file: " << ec.message() << "\n";
      return kInternalError;
    }
    llvm::FileRemover removeCpp(cppPath);
    {
      std::error_code ec;
      llvm::raw_fd_ostream cpp(cppPath, ec);
      if (ec || failed(emitSource(cpp)))
        return kInternalError;
    }
    bool built =
        cuda && !emulated ? compileCuda(cppPath, exePath) : compileCpp(cppPath, exePath, emulated);
    return built ? kOk : kInternalError;
  }

private:
  MLIRContext &ctx_;
  const dtl::FrontendOptions &options_;
};

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // Registered first, so --mlir-print-ir-before=/after= know them by name.
  dtl::registerDtlPasses();
  registerCSEPass();
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  // --help lists dtlc's options and MLIR's IR-printing and timing ones, not
  // every option of the LLVM libraries linked in.
  static cl::OptionCategory mlirCategory("MLIR instrumentation");
  for (auto &[name, option] : cl::getRegisteredOptions())
    if (name.starts_with("mlir-"))
      option->addCategory(mlirCategory);
  cl::HideUnrelatedOptions({&dtlcCategory, &mlirCategory});
  cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << "dtlc " << DTLC_VERSION << " (MLIR " << DTLC_MLIR_VERSION << ")\n";
  });
  cl::ParseCommandLineOptions(argc, argv,
                              "dtlc: compiles a .dtl model into a distributed training program\n");

  dtl::FrontendOptions options;
  llvm::SmallVector<std::string> meshItems;
  for (llvm::StringRef item : llvm::split(meshOverride, ','))
    if (!item.empty())
      meshItems.push_back(item.str());
  if (!parseAssignments(defines, options.sizes, "-D") ||
      !parseAssignments(meshItems, options.meshSizes, "--mesh"))
    return kUserError;
  if ((target != "cpu" && target != "cuda" && target != "cuda-emulation") ||
      (!precision.empty() && precision != "f32" && precision != "f64" && precision != "bf16") ||
      optLevel > 3) {
    llvm::errs()
        << "dtlc: error: expected --target=cpu|cuda|cuda-emulation, --precision=f32|f64|bf16, "
           "-O0..-O3\n";
    return kUserError;
  }
  if (!precision.empty())
    options.precision = dtl::symbolizePrecision(precision);
  if (march != "native" && march != "x86-64-v2" && march != "x86-64-v3" && march != "x86-64-v4") {
    llvm::errs() << "dtlc: error: --march is x86-64-v2, x86-64-v3, x86-64-v4 or native, not '"
                 << march << "'\n";
    return kUserError;
  }
  if (!std::isfinite(explainTeraflops) || explainTeraflops <= 0 || ranksPerNode < 1) {
    llvm::errs() << "dtlc: error: --explain-tflops takes a positive number of TFLOP/s and "
                    "--ranks-per-node a positive count\n";
    return kUserError;
  }
  if (target == "cuda" && emit == Emit::Exe && llvm::StringRef(DTLC_NVCC).empty()) {
    llvm::errs() << "dtlc: error: this dtlc was built without CUDA (no nvcc when it was "
                    "configured), so it cannot build --target=cuda executables; --emit=cuda "
                    "still writes the source\n";
    return kUserError;
  }

  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> input = openInputFile(inputFile, &errorMessage);
  if (!input) {
    llvm::errs() << "dtlc: error: " << errorMessage << "\n";
    return kUserError;
  }
  bool writesText = emit != Emit::Exe || explainMode != Explain::None;
  std::string outputName = outputPath(!writesText);
  std::unique_ptr<llvm::ToolOutputFile> output;
  if (writesText) {
    output = openOutputFile(outputName, &errorMessage);
    if (!output) {
      llvm::errs() << "dtlc: error: " << errorMessage << "\n";
      return kUserError;
    }
  }
  llvm::raw_ostream &os = output ? output->os() : llvm::outs();

  DialectRegistry registry;
  registry.insert<dtl::DtlDialect, func::FuncDialect, shard::ShardDialect>();
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();

  int worst = kOk;
  auto processBuffer = [&](std::unique_ptr<llvm::MemoryBuffer> buffer,
                           llvm::raw_ostream &out) -> LogicalResult {
    llvm::SourceMgr sourceMgr;
    const llvm::MemoryBuffer &ref = *buffer;
    sourceMgr.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
    if (verifyDiagnostics) {
      SourceMgrDiagnosticVerifierHandler handler(sourceMgr, &ctx);
      Compiler(ctx, options).compile(ref, llvm::nulls());
      return handler.verify();
    }
    SourceMgrDiagnosticHandler handler(sourceMgr, &ctx);
    // After kMaxErrors errors, later ones are dropped (registered last, so
    // this handler sees each diagnostic first).
    unsigned errors = 0;
    DiagnosticEngine::HandlerID capId = ctx.getDiagEngine().registerHandler([&](Diagnostic &d) {
      if (d.getSeverity() != DiagnosticSeverity::Error)
        return failure();
      if (++errors == kMaxErrors + 1)
        llvm::errs() << "dtlc: too many errors (" << kMaxErrors << "), stopping here\n";
      return success(errors > kMaxErrors);
    });
    int rc = Compiler(ctx, options).compile(ref, out);
    ctx.getDiagEngine().eraseHandler(capId);
    worst = std::max(worst, rc);
    return success(rc == kOk);
  };

  LogicalResult result =
      splitInputFile
          ? splitAndProcessBuffer(
                std::move(input),
                [&](std::unique_ptr<llvm::MemoryBuffer> chunk, const llvm::MemoryBufferRef &,
                    llvm::raw_ostream &out) { return processBuffer(std::move(chunk), out); },
                os)
          : processBuffer(std::move(input), os);
  if (verifyDiagnostics)
    return failed(result) ? kUserError : kOk;
  if (worst == kOk && output)
    output->keep();
  return worst;
}
