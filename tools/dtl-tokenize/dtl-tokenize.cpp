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

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr int32_t kMagic = 20240520, kVersion = 1;

void usage(std::FILE *out) {
  std::fprintf(out,
               "usage: dtl-tokenize [--level byte|char] [--val-fraction F] -o PREFIX FILE...\n"
               "Writes PREFIX_train.bin and PREFIX_val.bin (llm.c token shards) from the\n"
               "concatenated FILEs; with --level char also PREFIX.vocab.json, the code point\n"
               "of each token id.\n"
               "  --level byte        one token per byte, vocab 256 (default)\n"
               "  --level char        one token per UTF-8 character, vocab = distinct ones\n"
               "  --val-fraction F    share of the text (its end) for validation (0.1)\n");
}

[[noreturn]] void fail(const std::string &message) {
  std::fprintf(stderr, "dtl-tokenize: error: %s\n", message.c_str());
  std::exit(1);
}

/// Code points of UTF-8 text; a byte that starts no valid sequence stands for
/// itself (as Latin-1), so any file tokenizes.
std::vector<uint32_t> decodeUtf8(const std::string &text) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < text.size();) {
    unsigned char c = text[i];
    int length = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    uint32_t cp = length == 1 ? c : length == 2 ? c & 0x1F : length == 3 ? c & 0x0F : c & 0x07;
    bool valid = length > 0 && i + length <= text.size();
    for (int k = 1; valid && k < length; ++k) {
      unsigned char next = text[i + k];
      valid = (next >> 6) == 2;
      cp = (cp << 6) | (next & 0x3F);
    }
    if (!valid) {
      out.push_back(c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += length;
  }
  return out;
}

void writeShard(const std::string &path, const std::vector<uint16_t> &tokens) {
  int32_t header[256] = {kMagic, kVersion, int32_t(tokens.size())};
  std::string temp = path + ".tmp";
  std::FILE *f = std::fopen(temp.c_str(), "wb");
  if (!f)
    fail(temp + ": cannot create (" + std::strerror(errno) + ")");
  bool ok = std::fwrite(header, sizeof header, 1, f) == 1 &&
            std::fwrite(tokens.data(), sizeof(uint16_t), tokens.size(), f) == tokens.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0)
    fail(path + ": cannot write (" + std::strerror(errno) + ")");
  std::printf("wrote %s: %zu tokens\n", path.c_str(), tokens.size());
}

} // namespace

int main(int argc, char **argv) {
  std::string level = "byte", prefix;
  double valFraction = 0.1;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "--level") {
      level = value();
    } else if (a == "--val-fraction") {
      std::string v = value();
      char *end = nullptr;
      valFraction = std::strtod(v.c_str(), &end);
      if (*end || !(valFraction > 0 && valFraction < 1))
        fail("--val-fraction must be a number between 0 and 1, got '" + v + "'");
    } else if (a == "-o") {
      prefix = value();
    } else if (!a.empty() && a[0] == '-') {
      usage(stderr);
      fail("unknown flag '" + a + "'");
    } else {
      inputs.push_back(a);
    }
  }
  if (level != "byte" && level != "char")
    fail("--level is byte or char, got '" + level + "'");
  if (prefix.empty() || inputs.empty()) {
    usage(stderr);
    return 2;
  }

  std::string text;
  for (const std::string &path : inputs) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      fail(path + ": cannot open (" + std::strerror(errno) + ")");
    text.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::vector<uint16_t> tokens;
  if (level == "byte") {
    for (unsigned char c : text)
      tokens.push_back(c);
  } else {
    std::vector<uint32_t> chars = decodeUtf8(text);
    std::map<uint32_t, uint16_t> ids;
    for (uint32_t c : chars)
      ids.emplace(c, 0);
    if (ids.size() > 65536)
      fail("more than 65536 distinct characters; uint16 tokens cannot hold them");
    std::string vocab = "[";
    uint16_t next = 0;
    for (auto &[c, id] : ids) {
      id = next++;
      vocab += (id ? ", " : "") + std::to_string(c);
    }
    for (uint32_t c : chars)
      tokens.push_back(ids[c]);
    std::ofstream out(prefix + ".vocab.json");
    out << vocab << "]\n";
    if (!out)
      fail(prefix + ".vocab.json: cannot write");
    std::printf("vocab: %zu characters (%s.vocab.json)\n", ids.size(), prefix.c_str());
  }
  size_t val = size_t(tokens.size() * valFraction);
  if (tokens.size() < 4 || val < 2 || tokens.size() - val < 2)
    fail("the input has " + std::to_string(tokens.size()) + " tokens; too few to split");
  writeShard(prefix + "_train.bin",
             std::vector<uint16_t>(tokens.begin(), tokens.end() - val));
  writeShard(prefix + "_val.bin", std::vector<uint16_t>(tokens.end() - val, tokens.end()));
  return 0;
}
