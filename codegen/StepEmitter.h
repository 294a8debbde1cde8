//===- StepEmitter.h - what the CPU and CUDA code generators share -*- C++ -*-===//
//
// Both targets write one translation unit: step functions over flat
// row-major buffers (one arena per function, planned by BufferPlan), then a
// main() describing the Program for libdtlrt. StepEmitter names the values
// of one function; emitProgram writes the unit around the target's step
// functions.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_CODEGEN_STEPEMITTER_H
#define DTL_CODEGEN_STEPEMITTER_H

#include "codegen/BufferPlan.h"
#include "dialects/dtl/DtlOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <optional>
#include <string>

namespace dtl::emit {

/// A C++ string literal.
std::string quoted(llvm::StringRef s);
/// `{1, 2, 3}`.
std::string joined(llvm::ArrayRef<int64_t> values);
/// A double as a C++ literal that reads back exactly.
std::string literal(double v);
/// A C++ identifier from a user's name.
std::string identifier(llvm::StringRef name);
int64_t numElements(mlir::Type t);
llvm::ArrayRef<int64_t> shapeOf(mlir::Value v);
/// (product of the leading dims, last dim) of `v`'s local shape.
std::pair<int64_t, int64_t> rowsAndLast(mlir::Value v);

/// Input strides, in result-dimension space, of a broadcast (0 where the
/// input repeats) or of a transpose (result dim i walks input dim perm[i]).
llvm::SmallVector<int64_t> gatherStrides(BroadcastOp b);
llvm::SmallVector<int64_t> gatherStrides(TransposeOp t);

/// Where a rank's slice of a dropout input sits in the global tensor: the
/// local and global shapes and, per dim, a C++ expression for the offset
/// (read from `ctx`, the rank's Context).
struct DropoutLayout {
  llvm::SmallVector<int64_t> local, global;
  llvm::SmallVector<std::string> offsets;
};
mlir::FailureOr<DropoutLayout> dropoutLayout(DropoutOp d, llvm::ArrayRef<int64_t> meshShape);

/// `{a, b}` for mesh axes.
std::string axesList(llvm::ArrayRef<int16_t> axes);

/// Names the values of one step function as C++ pointers into its arena,
/// its arguments or (for in-place updates) its results.
class StepEmitter {
public:
  StepEmitter(mlir::func::FuncOp fn, BufferPlan plan, llvm::raw_ostream &os);
  virtual ~StepEmitter() = default;

protected:
  /// Declares a pointer per argument, named after the user's names.
  void declareArguments();
  /// `v`'s place in the arena (or its result buffer), named and remembered.
  std::string define(mlir::Value v);
  const std::string &use(mlir::Value v) const { return names_.at(v); }
  /// `v` as a read-only pointer into `source`'s buffer, `offset` elements in.
  virtual void defineView(mlir::Value v, mlir::Value source, int64_t offset);
  /// Reshapes and layers of stacked params: views, no code. False for
  /// other ops.
  bool emitView(mlir::Operation &op);
  /// A matmul (with its bias when fused) as both targets' GEMM calls take
  /// it: transposes, m, n, k, a, b; `bias` empty without one; `out` defined.
  struct GemmCall {
    llvm::SmallVector<std::string> args;
    std::string bias, out;
  };
  std::optional<GemmCall> gemmCall(mlir::Operation &op);
  /// Row kernels, the classifier, embeddings and attention: calls with the
  /// same arguments on both targets, to `ns`'s kernels ("dtlrt" or
  /// "dtlrt::cuda"). False for other ops.
  bool emitRowKernel(mlir::Operation &op, llvm::StringRef ns);
  /// "int32_t" or "real".
  static std::string elementType(mlir::Type t);
  static std::string str(int64_t v) { return std::to_string(v); }

  mlir::func::FuncOp fn_;
  llvm::raw_ostream &os_;
  BufferPlan plan_;
  llvm::DenseMap<mlir::Value, unsigned> inPlace_;

private:
  llvm::DenseMap<mlir::Value, std::string> names_;
  int next_ = 0;
};

/// What a target adds around the shared translation unit.
struct ProgramTarget {
  std::string sourceFile;
  bool f64 = false;
  /// #include lines and declarations before the step functions.
  std::string prelude;
  /// The C++ expression for Program::device ("" on the host).
  std::string device;
  /// Writes the step function `cppName` for `fn`.
  std::function<mlir::LogicalResult(mlir::func::FuncOp fn, llvm::StringRef cppName,
                                    llvm::ArrayRef<int64_t> meshShape, uint64_t seed,
                                    llvm::raw_ostream &os)>
      emitFunction;
};

/// Writes the translation unit: the target's prelude, a step function for
/// train_step, the model's forward and its gradient, and main().
mlir::LogicalResult emitProgram(mlir::ModuleOp module, const ProgramTarget &target,
                                llvm::raw_ostream &os);

} // namespace dtl::emit

#endif // DTL_CODEGEN_STEPEMITTER_H
