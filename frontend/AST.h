//===- AST.h - the abstract syntax tree of a .dtl file ----------*- C++ -*-===//
//
// What the parser builds from the ANTLR parse tree: plain structs, every
// node with its source position, no ANTLR types (so no exceptions) beyond
// Parser.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef DTL_FRONTEND_AST_H
#define DTL_FRONTEND_AST_H

#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dtl::ast {

/// 1-based line and column in a source file; `file` is null for the file
/// being compiled, else an imported file's path (owned by the Program).
struct Pos {
  unsigned line = 0, col = 0;
  const std::string *file = nullptr;
};

struct Expr;
struct Value;

struct Arg {
  std::string key; ///< empty for positional arguments
  std::unique_ptr<Value> value;
  Pos pos;
};

struct Call {
  std::string callee;
  std::vector<Arg> args;
  Pos pos;
};

struct Expr {
  enum class Kind { Number, Name, Neg, Binary, Call };
  Kind kind;
  Pos pos;
  double number = 0;                           ///< Number
  std::string name;                            ///< Name
  char op = 0;                                 ///< Binary: @ * / + -
  std::vector<std::unique_ptr<Expr>> operands; ///< Neg, Binary
  std::unique_ptr<Call> call;                  ///< Call
};

/// A call argument or train setting: an expression, a string or a tuple.
struct Value {
  enum class Kind { Expr, String, Tuple, Bytes, OneFOneB };
  Kind kind;
  Pos pos;
  std::unique_ptr<Expr> expr;
  std::string string; ///< String; Bytes: as written (40GiB)
  std::vector<Value> tuple;
};

/// A dimension: an integer expression of sizes (`C`, `4 * C`, `64`).
struct Dim {
  std::shared_ptr<Expr> expr;
  Pos pos;
};

struct TensorType {
  std::string dtype;
  std::vector<Dim> dims;
  Pos pos;
};

struct AxisRef {
  std::string name; ///< "_" means replicated
  Pos pos;
};

/// One list of axes per tensor dimension.
struct Sharding {
  std::vector<std::vector<AxisRef>> dims;
  Pos pos;
};

struct Stmt {
  enum class Kind { Param, Input, Assign, Unpack, Repeat, Return };
  Kind kind;
  Pos pos;
  std::string name;                 ///< Param, Input, Assign
  std::vector<std::string> names;   ///< Unpack: one per piece
  std::vector<Pos> namePos;         ///< Unpack
  TensorType type;                  ///< Param, Input
  std::optional<Sharding> sharding; ///< Param, Input
  std::unique_ptr<Call> init;       ///< Param
  std::string decay;                ///< Param: "true", "false" or "" (not written)
  Pos decayPos;                     ///< Param: where `decay`'s value is
  std::unique_ptr<Expr> expr;       ///< Assign, Unpack, Return; Repeat: the block call
  std::unique_ptr<Expr> count;      ///< Repeat: how many times
  std::string recompute;            ///< Repeat: "", "all" or the level written after it
  Pos recomputePos;                 ///< Repeat: where that level is
  std::string pipelineAxis;         ///< Repeat: the mesh axis of `pipeline AXIS`, or ""
  Pos pipelinePos;                  ///< Repeat: where that axis is
};

struct SizeParam {
  std::string name;
  std::optional<int64_t> defaultValue;
  Pos pos;
};

struct Model {
  std::string name;
  std::vector<SizeParam> sizes;
  std::vector<Stmt> body;
  Pos pos;
};

/// `block NAME(ARGS) { ... }`: statements with their own params, called
/// like a function; `x = repeat N NAME(x)` stacks N copies.
struct Block {
  std::string name;
  std::vector<std::string> args;
  std::vector<Stmt> body;
  Pos pos;
};

struct Import {
  std::string path;
  Pos pos;
};

struct MeshAxis {
  std::string name;
  int64_t size;
  Pos pos;
};

struct Mesh {
  std::string name;
  std::vector<MeshAxis> axes;
  Pos pos;
};

struct DataSource {
  bool isEval = false;
  std::vector<AxisRef> names; ///< the model inputs it feeds
  std::unique_ptr<Call> call;
  Pos pos;
};

struct Setting {
  std::string key;
  Value value;
  Pos pos;
};

struct Train {
  std::string model, mesh;
  Pos modelPos, meshPos, pos;
  std::vector<DataSource> data;
  std::vector<Setting> settings;
};

struct Program {
  std::vector<Import> imports;
  std::vector<Mesh> meshes;
  std::vector<Model> models;
  std::vector<Block> blocks;
  std::vector<Train> trains;
  /// Paths of the imported files the positions point to.
  std::vector<std::unique_ptr<std::string>> files;
};

/// Prints the tree, one node per line (dtlc --emit=ast).
void dump(const Program &program, llvm::raw_ostream &os);

} // namespace dtl::ast

#endif // DTL_FRONTEND_AST_H
