//===- Generator.h - the AST -> dtl generator's state -----------*- C++ -*-===//
//
// Internal to the frontend. Like Toy's MLIRGen, one walk over the AST checks
// names, shapes and shardings and emits the global-view module; every value
// gets the FileLineColLoc of the source that made it. The work is split by
// concern: declarations (Declarations.cpp), statements, blocks and
// expressions (Statements.cpp), the builtin functions (Builtins.cpp) and
// the train section (TrainSection.cpp); MLIRGen.cpp drives them.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_FRONTEND_GENERATOR_H
#define DTL_FRONTEND_GENERATOR_H

#include "frontend/MLIRGen.h"
#include "frontend/Parser.h"

#include "dialects/dtl/Contract.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

namespace dtl {

/// The entries of a tuple value, or the value itself.
llvm::SmallVector<const ast::Value *> itemsOf(const ast::Value &v);

class Generator {
public:
  Generator(mlir::MLIRContext &ctx, llvm::StringRef file, const FrontendOptions &options)
      : ctx(ctx), b(&ctx), file(file), options(options) {}

  mlir::OwningOpRef<mlir::ModuleOp> run(const ast::Program &program);

  // Diagnostics ------------------------------------------------------------
  mlir::Location loc(ast::Pos p) {
    return mlir::FileLineColLoc::get(&ctx, p.file ? llvm::StringRef(*p.file) : file, p.line, p.col);
  }
  mlir::InFlightDiagnostic error(ast::Pos p) {
    hadError = true;
    return mlir::emitError(loc(p));
  }
  /// Runs `build` (an op's shape rule, which reports at `l`), adding to an
  /// error it reports a note per operand written as a name ('x' is f32[4,
  /// 3]), so the user sees where the shapes came from.
  template <typename Fn>
  auto withOperandNotes(llvm::ArrayRef<const ast::Expr *> operands, Fn build) {
    mlir::ScopedDiagnosticHandler notes(&ctx, [&](mlir::Diagnostic &d) {
      if (d.getSeverity() == mlir::DiagnosticSeverity::Error) {
        hadError = true;
        noteOperands(d, operands);
      }
      return mlir::failure(); // on to the next handler, which reports it
    });
    return build();
  }
  void noteOperands(mlir::Diagnostic &d, llvm::ArrayRef<const ast::Expr *> operands);

  mlir::RankedTensorType f32(llvm::ArrayRef<int64_t> shape) {
    return mlir::RankedTensorType::get(shape, b.getF32Type());
  }
  mlir::Value constant(double value, mlir::RankedTensorType type, mlir::Location l) {
    return ConstantOp::create(b, l, type, b.getF64FloatAttr(value));
  }

  // Declarations (Declarations.cpp) -----------------------------------------
  bool selectMesh(const ast::Program &program, const ast::Train *train);
  bool resolveSizes(const ast::Model &model);
  std::optional<mlir::RankedTensorType> tensorType(const ast::TensorType &t, bool isParam);
  ShardingAttr sharding(const ast::Stmt &decl, mlir::RankedTensorType type);
  InitAttr initializer(const ast::Stmt &decl);
  /// Whether weight decay applies to a param of (per-layer) type `type`.
  bool decays(const ast::Stmt &decl, mlir::RankedTensorType type);
  mlir::DictionaryAttr argAttrs(const ast::Stmt &decl, mlir::RankedTensorType type,
                                llvm::StringRef name, unsigned stacked);
  mlir::BlockArgument addArgument(mlir::RankedTensorType type, mlir::DictionaryAttr attrs,
                                  mlir::Location l);
  void define(const std::string &name, mlir::Value v, ast::Pos pos);
  /// A size: an integer expression of sizes (`4 * C`), or nullopt after an error.
  std::optional<int64_t> sizeValue(const ast::Expr &e);
  /// A number computed from literals and sizes (`0.02 / sqrt(2 * L)`), or
  /// nullopt (unreported) when `e` is not such an expression.
  std::optional<double> constantValue(const ast::Expr &e);
  /// A literal number (or its negation) in the train section.
  std::optional<double> number(const ast::Value &v);
  /// `v` as a whole number, if it is one.
  std::optional<int64_t> integer(const ast::Value &v);

  // Model, statements, blocks, expressions (Statements.cpp) -----------------
  mlir::func::FuncOp emitModel(const ast::Model &model);
  /// Emits assignments (and blocks' params); returns the `return` value, or
  /// null (with `returnStmt` null when there was none).
  mlir::Value emitStatements(const std::vector<ast::Stmt> &body, llvm::StringRef prefix,
                             const ast::Stmt *&returnStmt);
  mlir::Value callBlock(const ast::Block &blk, const ast::Call &c, llvm::StringRef prefix);
  mlir::Value repeatBlock(const ast::Block &blk, const ast::Call &c, llvm::StringRef prefix,
                          int64_t count, RecomputeAttr recompute, llvm::StringRef pipelineAxis);
  /// Whether `repeat ... pipeline AXIS` (if written) names an axis that can
  /// split `count` layers; reports why not.
  bool pipelineAxisOk(const ast::Stmt &s, int64_t count);
  /// The index of the selected mesh's axis `name`, or -1.
  int64_t meshAxis(llvm::StringRef name) const;
  mlir::Value expandBlock(const ast::Block &blk, llvm::ArrayRef<mlir::Value> args,
                          llvm::StringRef prefix);
  mlir::Value expr(const ast::Expr &e);
  mlir::Value binary(const ast::Expr &e);
  mlir::Value matmul(const ast::Expr &e, mlir::Value lhs, const ast::Expr &rhsExpr);
  mlir::Value broadcastTo(mlir::Value v, llvm::ArrayRef<int64_t> shape, mlir::Location l);
  bool requireF32(mlir::Value v, const ast::Expr &e, llvm::StringRef what);
  /// A positional argument as a tensor (errors name `callee`).
  mlir::Value tensorArg(const ast::Arg &a, const std::string &callee);
  /// `v`, a value of the function (a stacked param or an invariant such as
  /// the step), as seen inside the innermost `repeat` body being generated:
  /// each enclosing body takes it as a block argument (for a stacked param,
  /// its slice).
  mlir::Value visible(mlir::Value v, bool stacked);
  /// The `step` argument dropout draws its mask with, made on first use.
  mlir::Value stepArgument(mlir::Location l);
  /// The layer indices of the enclosing `repeat`s, outermost first, as seen
  /// in the innermost body, and their counts.
  std::pair<llvm::SmallVector<mlir::Value>, llvm::SmallVector<int64_t>> layerIndices();

  // Builtins (Builtins.cpp) ----------------------------------------------------
  /// A builtin's value; `pieces` receives a split's (an unpacking).
  mlir::Value call(const ast::Call &c, llvm::SmallVector<mlir::Value> *pieces = nullptr);

  // Train section (TrainSection.cpp) -------------------------------------------
  void emitTrain(mlir::ModuleOp module, const ast::Train &train);
  bool interleaveStages(int64_t chunks, int64_t microBatches, ast::Pos pos);
  /// Splits a pipelined repeat whose layers do not divide into equal
  /// stages into stages of about equal cost (uneven stages).
  void balanceStages();
  void checkTensorSizes(mlir::ModuleOp module);
  void markInputBounds();
  DataAttr dataSource(const ast::DataSource &source);

  // State ----------------------------------------------------------------------
  mlir::MLIRContext &ctx;
  mlir::OpBuilder b;
  llvm::StringRef file;
  const FrontendOptions &options;
  bool hadError = false;

  struct Symbol {
    mlir::Value value;
    ast::Pos pos;
  };
  llvm::StringMap<Symbol> symbols;
  llvm::StringSet<> poisoned; ///< names whose definition failed (already reported)
  llvm::StringMap<int64_t> sizes;
  llvm::StringSet<> inputNames;
  const ast::Mesh *mesh = nullptr;
  std::vector<int64_t> meshShape;
  std::string meshName = "mesh";
  bool pipelined = false;   ///< the model has a pipelined repeat
  RepeatOp pipelinedRepeat; ///< ... made (null when it failed)
  llvm::SmallVector<std::pair<mlir::Value, mlir::Value>> crossEntropies; // (logits, labels)
  mlir::func::FuncOp fn;
  llvm::StringMap<const ast::Block *> blocks;
  /// Params made by block calls, by full name (`h.w_fc`).
  llvm::StringMap<mlir::BlockArgument> blockParams;
  mlir::Value stepArg;
  int64_t dropoutStreams = 0;
  unsigned blockDepth = 0;

  /// A `repeat` body being generated. Values of the enclosing scope enter
  /// it as block arguments: stacked slices (after the index and the carried
  /// value) and invariants (at the end).
  struct RepeatScope {
    mlir::Block *body;
    int64_t count;
    llvm::SmallVector<mlir::Value> stacked, invariants; ///< operands, in the enclosing scope
    llvm::DenseMap<mlir::Value, mlir::Value> entered{}; ///< enclosing value -> body argument
  };
  llvm::SmallVector<RepeatScope> scopes;
};

} // namespace dtl

#endif // DTL_FRONTEND_GENERATOR_H
