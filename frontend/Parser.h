//===- Parser.h - .dtl source -> AST ----------------------------*- C++ -*-===//

#ifndef DTL_FRONTEND_PARSER_H
#define DTL_FRONTEND_PARSER_H

#include "frontend/AST.h"

#include "llvm/ADT/StringRef.h"

#include <functional>
#include <optional>

namespace dtl {

/// Receives each syntax error (position and message).
using SyntaxErrorFn = std::function<void(ast::Pos, const std::string &)>;

/// dtlc's limits on a source file (docs/language.md).
constexpr unsigned kMaxNesting = 256;                   ///< brackets inside brackets
constexpr unsigned kMaxOperators = 4096;                ///< + - * / @ in one statement
constexpr int64_t kMaxRepeat = 65536;                   ///< layers of one `repeat`
constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 48; ///< 256 TiB, any one tensor

/// Bytes written as a number and a unit (40GiB, 1.5TB; KiB..TiB binary,
/// KB..TB decimal), or nullopt for anything else or over 2^63 bytes.
std::optional<int64_t> parseBytes(llvm::StringRef text);

/// Checks `source` before parsing: valid UTF-8 (else the line and column of
/// the first bad byte), nesting and statement length within the limits.
/// Reports the first problem and returns false.
bool checkSource(const std::string &source, const SyntaxErrorFn &onError,
                 const std::string *file = nullptr);

/// Parses `source`; returns null after reporting syntax errors (ANTLR recovers,
/// so one run reports several). Positions carry `file` (null: the main file).
std::unique_ptr<ast::Program> parseProgram(const std::string &source, const SyntaxErrorFn &onError,
                                           const std::string *file = nullptr);

/// Reads, parses and merges the files `program` imports (and theirs),
/// relative to the importing file; `mainFile` is the compiled file's path.
/// Returns false after reporting a missing file, a cycle or syntax errors.
bool resolveImports(ast::Program &program, const std::string &mainFile,
                    const SyntaxErrorFn &onError);

} // namespace dtl

#endif // DTL_FRONTEND_PARSER_H
