//===- dtl-tokenize.cpp - text -> llm.c token shards ----------------------===//
//
// Turns text files into the token shards `tokens(...)` reads: a 256 x int32
// header (magic 20240520, version 1, token count) and uint16 tokens. Two
// vocabularies, both exact and reversible:
//   byte: every byte is its own token (vocab 256);
//   char: each distinct UTF-8 character gets an id in code-point order
//         (vocab = characters seen; the ids are listed in PREFIX.vocab.json).
// The last --val-fraction of the text becomes the validation shard.
//
//===----------------------------------------------------------------------===//

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/EndianStream.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <string>
#include <vector>

using namespace llvm;

namespace {

constexpr int32_t kMagic = 20240520, kVersion = 1;

enum class Level { Byte, Char };

cl::OptionCategory category("dtl-tokenize options");
cl::opt<Level> level("level", cl::desc("What one token is"), cl::init(Level::Byte),
                     cl::values(clEnumValN(Level::Byte, "byte", "one byte: vocab 256 (default)"),
                                clEnumValN(Level::Char, "char",
                                           "one UTF-8 character: vocab = the distinct ones")),
                     cl::cat(category));
cl::opt<double> valFraction("val-fraction",
                            cl::desc("Share of the text (its end) for validation (0.1)"),
                            cl::init(0.1), cl::cat(category));
cl::opt<std::string> prefix("o", cl::desc("Writes PREFIX_train.bin and PREFIX_val.bin"),
                            cl::value_desc("PREFIX"), cl::Required, cl::cat(category));
cl::list<std::string> inputs(cl::Positional, cl::desc("FILE..."), cl::OneOrMore, cl::cat(category));

[[noreturn]] void fail(const Twine &message) {
  WithColor::error(errs(), "dtl-tokenize") << message << "\n";
  std::exit(1);
}

/// Code points of UTF-8 text; a byte that starts no valid sequence stands for
/// itself (as Latin-1), so any file tokenizes.
std::vector<uint32_t> decodeUtf8(StringRef text) {
  std::vector<uint32_t> out;
  auto *next = reinterpret_cast<const UTF8 *>(text.begin());
  auto *end = reinterpret_cast<const UTF8 *>(text.end());
  while (next < end) {
    const UTF8 *start = next;
    UTF32 codePoint;
    if (convertUTF8Sequence(&next, end, &codePoint, strictConversion) == conversionOK) {
      out.push_back(codePoint);
      continue;
    }
    out.push_back(*start);
    next = start + 1;
  }
  return out;
}

/// Writes the shard through a temporary file renamed into place, so a
/// failed write never leaves a truncated shard behind.
void writeShard(const std::string &path, ArrayRef<uint16_t> tokens) {
  Error error = writeToOutput(path, [&](raw_ostream &os) {
    support::endian::Writer writer(os, endianness::little);
    int32_t header[256] = {kMagic, kVersion, int32_t(tokens.size())};
    for (int32_t word : header)
      writer.write(word);
    for (uint16_t token : tokens)
      writer.write(token);
    return Error::success();
  });
  if (error)
    fail(path + ": cannot write (" + toString(std::move(error)) + ")");
  outs() << "wrote " << path << ": " << tokens.size() << " tokens\n";
}

/// One id per distinct character, in code-point order; writes the vocab.
std::vector<uint16_t> charTokens(StringRef text) {
  std::vector<uint32_t> chars = decodeUtf8(text);
  std::map<uint32_t, uint16_t> ids;
  for (uint32_t c : chars)
    ids.emplace(c, 0);
  if (ids.size() > 65536)
    fail("more than 65536 distinct characters; uint16 tokens cannot hold them");
  json::Array vocab;
  uint16_t next = 0;
  for (auto &[c, id] : ids) {
    id = next++;
    vocab.push_back(int64_t(c));
  }
  std::string vocabPath = prefix + ".vocab.json";
  if (Error error = writeToOutput(vocabPath, [&](raw_ostream &os) {
        os << json::Value(std::move(vocab)) << "\n";
        return Error::success();
      }))
    fail(vocabPath + ": cannot write (" + toString(std::move(error)) + ")");
  outs() << "vocab: " << ids.size() << " characters (" << vocabPath << ")\n";
  std::vector<uint16_t> tokens;
  tokens.reserve(chars.size());
  for (uint32_t c : chars)
    tokens.push_back(ids[c]);
  return tokens;
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "text files -> llm.c token shards (PREFIX_train.bin, PREFIX_val.bin; with --level=char\n"
      "also PREFIX.vocab.json, the code point of each token id)\n");
  if (!(valFraction > 0 && valFraction < 1))
    fail("--val-fraction must lie strictly between 0 and 1");

  std::string text;
  for (const std::string &path : inputs) {
    ErrorOr<std::unique_ptr<MemoryBuffer>> file = MemoryBuffer::getFile(path);
    if (!file)
      fail(path + ": cannot open (" + file.getError().message() + ")");
    text += (*file)->getBuffer();
  }

  std::vector<uint16_t> tokens;
  if (level == Level::Byte)
    tokens.assign(StringRef(text).bytes_begin(), StringRef(text).bytes_end());
  else
    tokens = charTokens(text);
  size_t val = size_t(tokens.size() * valFraction);
  if (tokens.size() < 4 || val < 2 || tokens.size() - val < 2)
    fail("the input has " + Twine(tokens.size()) + " tokens; too few to split");
  ArrayRef<uint16_t> all(tokens);
  writeShard(prefix + "_train.bin", all.drop_back(val));
  writeShard(prefix + "_val.bin", all.take_back(val));
  return 0;
}
