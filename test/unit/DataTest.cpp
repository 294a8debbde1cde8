//===- DataTest.cpp - IDX files (plain and gzip), bad files, the sampler --===//

#include "dtlrt/Data.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

using namespace dtlrt;

namespace {

std::string tempPath(const std::string &name) { return ::testing::TempDir() + "/dtlrt-" + name; }

/// An IDX file: magic 0x0000 <type> <rank>, big-endian dims, then data.
std::vector<unsigned char> idxBytes(unsigned char type, std::vector<uint32_t> dims,
                                    const std::vector<unsigned char> &data) {
  std::vector<unsigned char> out = {0, 0, type, (unsigned char)dims.size()};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back((d >> shift) & 0xff);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string writeFile(const std::string &name, const std::vector<unsigned char> &bytes,
                      bool gzip = false) {
  std::string path = tempPath(name);
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), (unsigned)bytes.size());
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write((const char *)bytes.data(), bytes.size());
  }
  return path;
}

TEST(Idx, ReadsImagesAsScaledFloats) {
  std::string path =
      writeFile("images.idx", idxBytes(0x08, {2, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4}));
  Dataset d = readIdx(path);
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.sampleShape, (std::vector<int64_t>{2, 2}));
  EXPECT_FLOAT_EQ(d.value(0, 1), 1.0f);
  EXPECT_FLOAT_EQ(d.value(0, 2), 0.2f);
  EXPECT_FLOAT_EQ(d.value(1, 3), 4 / 255.0f);
}

TEST(Idx, ReadsGzipLabels) {
  std::string path = writeFile("labels.idx.gz", idxBytes(0x08, {3}, {7, 0, 9}), true);
  Dataset d = readIdx(path);
  EXPECT_EQ(d.count, 3);
  EXPECT_EQ(d.sampleSize(), 1);
  EXPECT_EQ(d.label(0), 7);
  EXPECT_EQ(d.label(2), 9);
}

TEST(Idx, ReadsBigEndianInt32AndFloat32) {
  // i32 -2 and 258; f32 1.5 (0x3FC00000).
  Dataset ints =
      readIdx(writeFile("i32.idx", idxBytes(0x0C, {2}, {0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 2})));
  EXPECT_EQ(ints.label(0), -2);
  EXPECT_EQ(ints.label(1), 258);
  Dataset floats = readIdx(writeFile("f32.idx", idxBytes(0x0D, {1, 1}, {0x3f, 0xc0, 0, 0})));
  EXPECT_FLOAT_EQ(floats.value(0, 0), 1.5f);
}

TEST(Idx, ReadsTheRealFashionMnistWhenInstalled) {
  const char *path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (!std::ifstream(path))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  Dataset d = readIdx(path);
  EXPECT_EQ(d.count, 10000);
  for (int64_t i = 0; i < d.count; ++i)
    ASSERT_TRUE(d.label(i) >= 0 && d.label(i) < 10);
}

/// The message of the DataError `fn` throws, or "" when it does not throw.
template <typename Fn> std::string errorOf(Fn fn) {
  try {
    fn();
  } catch (const DataError &e) {
    return e.what();
  }
  return "";
}

TEST(Idx, MissingFileNamesThePath) {
  std::string message = errorOf([] { readIdx("/nonexistent/train.idx"); });
  EXPECT_NE(message.find("/nonexistent/train.idx: cannot open"), std::string::npos) << message;
}

TEST(Idx, BadMagicIsRejected) {
  std::string path = writeFile("bad-magic.idx", {'P', 'K', 3, 4, 0, 0, 0, 0});
  std::string message = errorOf([&] { readIdx(path); });
  EXPECT_NE(message.find("not an IDX file"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST(Idx, TruncatedDataSaysHowMuchWasThere) {
  std::vector<unsigned char> bytes = idxBytes(0x08, {10, 4}, {1, 2, 3});
  std::string path = writeFile("truncated.idx", bytes);
  std::string message = errorOf([&] { readIdx(path); });
  EXPECT_NE(message.find("truncated: the header promises 40 bytes of data, the file has 3"),
            std::string::npos)
      << message;
}

TEST(Idx, CorruptGzipIsRejected) {
  std::vector<unsigned char> bytes = idxBytes(0x08, {1000, 4}, std::vector<unsigned char>(4000, 7));
  std::string whole = writeFile("whole.idx.gz", bytes, true);
  std::ifstream in(whole, std::ios::binary);
  std::vector<unsigned char> compressed((std::istreambuf_iterator<char>(in)), {});
  compressed.resize(compressed.size() / 2);
  std::string path = writeFile("half.idx.gz", compressed);
  std::string message = errorOf([&] { readIdx(path); });
  EXPECT_NE(message.find("corrupt gzip data"), std::string::npos) << message;
}

TEST(Idx, UnsupportedElementTypeIsRejectedInHex) {
  std::string path = writeFile("f64.idx", idxBytes(0x0E, {1}, {0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(errorOf([&] { readIdx(path); }),
            path + ": IDX element type 0x0E is not supported (0x08 u8, 0x0C i32 and 0x0D f32 are)");
  std::string i16 = writeFile("i16.idx", idxBytes(0x0B, {1}, {0, 0}));
  EXPECT_NE(errorOf([&] { readIdx(i16); }).find("type 0x0B is"), std::string::npos);
}

// A FIFO would block the reader forever, a directory cannot be read: both
// are refused before opening.
TEST(Idx, OnlyRegularFilesAreData) {
  std::string fifo = ::testing::TempDir() + "/dtlrt-data-fifo";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(errorOf([&] { readIdx(fifo); }),
            fifo + ": not a regular file (a FIFO); data must be a file");
  EXPECT_EQ(errorOf([&] { readTokens(fifo); }),
            fifo + ": not a regular file (a FIFO); data must be a file");
  EXPECT_EQ(errorOf([&] { readIdx("/tmp"); }),
            "/tmp: not a regular file (a directory); data must be a file");
  ::unlink(fifo.c_str());
}

/// An llm.c token shard: header (magic, version, count) and uint16 tokens.
std::vector<unsigned char> tokenBytes(int32_t magic, int32_t version, int32_t count,
                                      const std::vector<uint16_t> &tokens) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic, header[1] = version, header[2] = count;
  std::vector<unsigned char> out((const unsigned char *)header.data(),
                                 (const unsigned char *)(header.data() + 256));
  out.insert(out.end(), (const unsigned char *)tokens.data(),
             (const unsigned char *)(tokens.data() + tokens.size()));
  return out;
}

TEST(Tokens, ReadsAShard) {
  std::string path = writeFile("ok.bin", tokenBytes(20240520, 1, 4, {7, 65535, 0, 42}));
  TokenFile file = readTokens(path);
  ASSERT_EQ(file.count, 4);
  EXPECT_EQ(file.tokens[0], 7);
  EXPECT_EQ(file.tokens[1], 65535);
  EXPECT_EQ(file.tokens[3], 42);
}

TEST(Tokens, BadHeadersSayWhatIsWrong) {
  struct Case {
    std::vector<unsigned char> bytes;
    std::string expected;
  } cases[] = {
      {tokenBytes(1234, 1, 2, {1, 2}), "not a token shard (magic 1234, expected 20240520)"},
      {tokenBytes(20240520, 2, 2, {1, 2}), "token shard version 2 is not supported"},
      {tokenBytes(20240520, 1, 5, {1, 2}),
       "the header promises 5 tokens (1034 bytes), the file has 1028 bytes"},
      {{1, 2, 3}, "shorter than the 1024-byte header"},
  };
  int i = 0;
  for (const Case &c : cases) {
    std::string path = writeFile("bad" + std::to_string(i++) + ".bin", c.bytes);
    std::string message = errorOf([&] { readTokens(path); });
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
  }
}

TEST(Sampler, EachEpochIsAPermutation) {
  Sampler sampler(100, 42);
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    for (int64_t i = 0; i < 100; ++i)
      seen.insert(sampler.at(epoch * 100 + i));
    EXPECT_EQ(seen.size(), 100u);
    EXPECT_EQ(*seen.begin(), 0);
    EXPECT_EQ(*seen.rbegin(), 99);
  }
}

TEST(Sampler, SameSeedSameOrderDifferentEpochsDiffer) {
  Sampler a(50, 7), b(50, 7);
  std::vector<int64_t> first, second;
  for (int64_t i = 0; i < 50; ++i) {
    EXPECT_EQ(a.at(i), b.at(i));
    first.push_back(a.at(i));
  }
  for (int64_t i = 50; i < 100; ++i)
    second.push_back(a.at(i));
  EXPECT_NE(first, second);
}

TEST(Random, NormalHasUnitMoments) {
  double sum = 0, squares = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double x = normalAt(1, "w", i);
    sum += x;
    squares += x * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(squares / n, 1.0, 0.01);
}

} // namespace
