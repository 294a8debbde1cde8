//===- StepPrinter.h - one step function, printed op by op ------*- C++ -*-===//
//
// Internal to codegen. StepPrinter prints a function of the execution IR as
// a C++ function over the step's buffers: one print function per op kind,
// the .dtl source line in a comment above each kernel or call. Both targets
// call the same runtime functions with the same arguments (dtlrt/Cpu.h,
// dtlrt/Cuda.h), so the shared ops print once; a PrinterTarget adds what is
// its own: how a fused chain runs (a loop, a kernel) and the prelude.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_CODEGEN_STEPPRINTER_H
#define DTL_CODEGEN_STEPPRINTER_H

#include "dialects/dtl/Contract.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Support/IndentedOstream.h"

#include <memory>
#include <string>

namespace dtl {

class StepPrinter;

/// What a target adds to the shared printer.
class PrinterTarget {
public:
  virtual ~PrinterTarget() = default;
  /// The runtime's namespace: "dtlrt" or "dtlrt::cuda".
  virtual llvm::StringRef ns() const = 0;
  /// #include lines and declarations before the step functions.
  virtual std::string prelude() const = 0;
  /// Program::device in main() ("" on the host).
  virtual std::string device(mlir::ModuleOp module) const = 0;
  /// Prints one fused chain: a loop or a kernel and its launch.
  virtual mlir::LogicalResult printFused(StepPrinter &printer, FusedOp fused) = 0;
  /// What ends a step function (the CUDA target joins its streams).
  virtual void printFunctionEnd(mlir::raw_indented_ostream &os) const {}
};

class StepPrinter {
public:
  StepPrinter(PrinterTarget &target, mlir::ModuleOp module, mlir::raw_indented_ostream &os,
              llvm::raw_ostream &kernels);

  /// Prints `fn` as `void cppName(dtlrt::Context &, void *const *args,
  /// void *const *results)`.
  mlir::LogicalResult printFunction(mlir::func::FuncOp fn, llvm::StringRef cppName);

  // For targets --------------------------------------------------------------
  mlir::raw_indented_ostream &os() { return os_; }
  llvm::raw_ostream &kernels() { return kernels_; }
  llvm::StringRef functionName() const { return functionName_; }
  /// The C++ name of `v` (a pointer, or a layer index).
  const std::string &name(mlir::Value v) const;
  /// Names `v` as `sameAs` is named (a block argument bound to its operand,
  /// a wait's result to the pending value).
  void alias(mlir::Value v, mlir::Value sameAs);
  /// Declares `v`'s pointer at its place; returns its name.
  std::string define(mlir::Value v);
  /// How `type`'s elements are stored: "real", "dtlrt::bf16" or "int32_t".
  static std::string elementType(mlir::Type type);
  /// What generated code computes `type`'s elements in: "real" or "int32_t".
  static std::string computeType(mlir::Type type);
  /// The C++ statements computing a fused body on one element: each body
  /// argument named by `argNames`, each op one `const T vN = ...;`. Returns
  /// the name holding the yielded element.
  std::string printElement(FusedOp fused, llvm::ArrayRef<std::string> argNames,
                           mlir::raw_indented_ostream &out);
  int nextKernel() { return kernelCount_++; }

private:
  /// `// file:line:col` above an op's code (every op that computes).
  void printLocation(mlir::Operation *op);
  mlir::LogicalResult printBlock(mlir::Block &block);
  mlir::LogicalResult printOperation(mlir::Operation *op);
  /// A call `ns::fn(args...)`.
  void call(llvm::StringRef fn, llvm::ArrayRef<std::string> args);

  mlir::LogicalResult print(MatmulOp op);
  mlir::LogicalResult print(MatmulBiasOp op);
  mlir::LogicalResult print(BroadcastOp op);
  mlir::LogicalResult print(TransposeOp op);
  mlir::LogicalResult print(SplitOp op);
  mlir::LogicalResult print(ConcatOp op);
  mlir::LogicalResult print(ReduceSumOp op);
  mlir::LogicalResult print(ReshapeOp op);
  mlir::LogicalResult print(StackedSliceOp op);
  mlir::LogicalResult print(SoftmaxOp op);
  mlir::LogicalResult print(SoftmaxGradOp op);
  mlir::LogicalResult print(LayerNormOp op);
  mlir::LogicalResult print(LayerNormGradInputOp op);
  mlir::LogicalResult print(LayerNormGradParamsOp op);
  mlir::LogicalResult print(EmbeddingOp op);
  mlir::LogicalResult print(EmbeddingGradOp op);
  mlir::LogicalResult print(CausalAttentionOp op);
  mlir::LogicalResult print(CausalAttentionGradOp op);
  mlir::LogicalResult print(CrossEntropyOp op);
  mlir::LogicalResult print(CrossEntropyGradOp op);
  mlir::LogicalResult print(CrossEntropyPartialOp op);
  mlir::LogicalResult print(CrossEntropyCombineOp op);
  mlir::LogicalResult print(CorrectOp op);
  mlir::LogicalResult print(ArgmaxPartialOp op);
  mlir::LogicalResult print(CorrectCombineOp op);
  mlir::LogicalResult print(DropoutOp op);
  mlir::LogicalResult print(AdamwUpdateOp op);
  mlir::LogicalResult print(SgdUpdateOp op);
  mlir::LogicalResult print(RepeatOp op);
  mlir::LogicalResult print(CollectiveWaitOp op);
  mlir::LogicalResult print(mlir::shard::AllReduceOp op);
  mlir::LogicalResult print(mlir::shard::ReduceScatterOp op);
  mlir::LogicalResult print(mlir::shard::AllGatherOp op);
  mlir::LogicalResult print(mlir::shard::AllToAllOp op);
  mlir::LogicalResult print(mlir::shard::AllSliceOp op);
  mlir::LogicalResult print(mlir::func::ReturnOp op);
  mlir::LogicalResult print(mlir::shard::ProcessMultiIndexOp op);
  mlir::LogicalResult print(mlir::scf::IndexSwitchOp op);
  mlir::LogicalResult print(mlir::shard::SendOp op);
  mlir::LogicalResult print(mlir::shard::RecvOp op);
  /// A send or receive: ns::method<T>(ctx, data, count, peer, axes, slot, what).
  mlir::LogicalResult pointToPoint(llvm::StringRef kind, mlir::Operation *op, llvm::StringRef data,
                                   llvm::ArrayRef<int16_t> axes,
                                   std::optional<llvm::ArrayRef<int64_t>> peer);

  /// A shaped collective: ns::method<T>(ctx, in, out, {shape}, dims..., axes, slot, what).
  mlir::LogicalResult collective(llvm::StringRef kind, llvm::StringRef method, mlir::Operation *op,
                                 llvm::ArrayRef<int64_t> dims, llvm::ArrayRef<int16_t> axes);
  /// "all_reduce over [dp] of N elements in step_f", for the program's messages.
  std::string describe(llvm::StringRef kind, llvm::ArrayRef<int16_t> axes, mlir::Value input);
  llvm::SmallVector<std::string> blockOf(std::optional<llvm::ArrayRef<int16_t>> axes, int64_t size);
  /// A gather by strides (broadcast, transpose).
  mlir::LogicalResult gather(mlir::Operation *op, llvm::ArrayRef<int64_t> strides);
  /// A split (`toPieces`) or concat: per piece, one strided copy between it
  /// and its runs in the whole.
  void copyPieces(mlir::Value whole, mlir::ValueRange pieces, int64_t dim, int64_t interleave,
                  bool toPieces);

  PrinterTarget &target_;
  MeshAttr mesh_;
  uint64_t seed_;
  mlir::raw_indented_ostream &os_;
  llvm::raw_ostream &kernels_;
  std::string functionName_;
  llvm::DenseMap<mlir::Value, std::string> names_;
  int nextName_ = 0, nextIndex_ = 0, kernelCount_ = 0;
  /// A pipeline stage's layer indices: the global layer, for what is drawn by it.
  llvm::DenseMap<mlir::Value, std::string> globalLayers_;
  /// Per repeat, the slot of its stacked operands and results the current
  /// iteration reads and writes.
  llvm::DenseMap<mlir::Operation *, std::string> stackedSlots_;
};

/// The targets (CpuTarget.cpp, CudaTarget.cpp).
std::unique_ptr<PrinterTarget> makeCpuTarget();
std::unique_ptr<PrinterTarget> makeCudaTarget();

/// C++ spelling helpers shared by the printers.
namespace cpp {
/// A C++ string literal of any bytes.
std::string quoted(llvm::StringRef s);
/// `{1, 2, 3}`.
std::string list(llvm::ArrayRef<int64_t> values);
/// A double as a C++ literal that reads back exactly.
std::string literal(double v);
/// A C++ identifier made from a user's name.
std::string identifier(llvm::StringRef name);
} // namespace cpp

} // namespace dtl

#endif // DTL_CODEGEN_STEPPRINTER_H
