//===- SourceCheck.cpp - what the parser must never see -------------------===//
//
// One linear pass over the bytes before ANTLR: invalid UTF-8 is reported at
// its line and column (ANTLR's converter would throw without a position),
// and nesting or expression length beyond dtlc's limits is refused before
// the recursive parser and the AST walks could exhaust the stack (or ANTLR's
// error recovery spend seconds per bracket). The limits are in
// docs/language.md.
//
//===----------------------------------------------------------------------===//

#include "frontend/Parser.h"

#include <cstdio>

using namespace dtl;

namespace {

/// The length of the UTF-8 sequence starting at `s[i]`, or 0 when invalid
/// (bad lead byte, missing or bad continuation, overlong, surrogate, or
/// beyond U+10FFFF).
size_t utf8Length(const std::string &s, size_t i) {
  unsigned char c = s[i];
  if (c < 0x80)
    return 1;
  size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
  if (n == 0 || (n == 3 && c > 0xEF) || i + n > s.size())
    return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
      return 0;
  unsigned char c1 = s[i + 1];
  if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
      (c == 0xF4 && c1 > 0x8F))
    return 0;
  return n;
}

bool isOperator(char c) { return c == '+' || c == '-' || c == '*' || c == '/' || c == '@'; }

} // namespace

bool dtl::checkSource(const std::string &source, const SyntaxErrorFn &onError,
                      const std::string *file) {
  unsigned line = 1, col = 1, depth = 0, operators = 0;
  bool inString = false, inComment = false;
  for (size_t i = 0; i < source.size();) {
    size_t n = utf8Length(source, i);
    if (n == 0) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02X", unsigned(static_cast<unsigned char>(source[i])));
      onError(ast::Pos{line, col, file},
              std::string("invalid UTF-8 (byte ") + byte + "); .dtl files are UTF-8 text");
      return false;
    }
    char c = source[i];
    if (c == '\n') {
      inComment = inString = false; // neither spans lines
      ++line;
      col = 1;
      ++i;
      continue;
    }
    if (inComment) {
    } else if (inString) {
      if (c == '\\' && i + 1 < source.size() && source[i + 1] != '\n') {
        i += 2; // the escaped character (ASCII in any valid string)
        col += 2;
        continue;
      }
      inString = c != '"';
    } else if (c == '"') {
      inString = true;
    } else if (c == '/' && i + 1 < source.size() && source[i + 1] == '/') {
      inComment = true;
    } else if (c == '(' || c == '[' || c == '{') {
      if (++depth > kMaxNesting) {
        onError(ast::Pos{line, col, file},
                "brackets nested deeper than " + std::to_string(kMaxNesting) +
                    " levels (dtlc's limit); name the inner values in statements");
        return false;
      }
    } else if (c == ')' || c == ']' || c == '}') {
      depth -= depth > 0;
    } else if (c == ';') {
      operators = 0;
    } else if (isOperator(c) && ++operators > kMaxOperators) {
      onError(ast::Pos{line, col, file},
              "more than " + std::to_string(kMaxOperators) +
                  " operators in one statement (dtlc's limit); split it into statements");
      return false;
    }
    i += n;
    ++col;
  }
  return true;
}
