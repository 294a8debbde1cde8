//===- CheckpointTest.cpp - safetensors written, read back, refused -------===//
//
// writeSafetensors and the header reader that resuming builds on: a written
// file reads back with its tensors and metadata, a failed write leaves the
// old file, and every kind of damaged file is refused naming the path and
// what is wrong.
//
//===----------------------------------------------------------------------===//

#include "dtlrt/Checkpoint.h"
#include "dtlrt/Data.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace dtlrt;

namespace {

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/dtlrt-checkpoint-" + name;
}

std::string readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeAll(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

/// A safetensors file with `header` as its JSON text and `data` after it.
std::string withHeader(const std::string &header, size_t dataBytes = 0) {
  uint64_t length = header.size();
  std::string out(reinterpret_cast<const char *>(&length), 8);
  return out + header + std::string(dataBytes, '\0');
}

/// The DataError message readSafetensorsHeader throws on the file at `path`.
std::string refusal(const std::string &path) {
  try {
    readSafetensorsHeader(path);
  } catch (const DataError &e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(Safetensors, AWrittenFileReadsBack) {
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  std::vector<double> b = {0.5, -0.5};
  std::vector<int32_t> n = {7};
  std::string path = tempPath("roundtrip.safetensors");
  writeSafetensors(path,
                   {{"w", DType::F32, {2, 3}, w.data()},
                    {"b", DType::F64, {2}, b.data()},
                    {"n", DType::I32, {}, n.data()}},
                   {{"step", "12"}, {"model", "mlp"}});
  SafetensorsHeader header = readSafetensorsHeader(path);
  EXPECT_EQ(header.metadata.at("step"), "12");
  EXPECT_EQ(header.metadata.at("model"), "mlp");
  ASSERT_EQ(header.tensors.size(), 3u);
  EXPECT_EQ(header.dataOffset % 8, 0u) << "the data starts 8-byte aligned";
  std::string file = readAll(path);
  const SafetensorsEntry &we = header.tensors[0], &be = header.tensors[1], &ne = header.tensors[2];
  EXPECT_EQ(we.name, "w");
  EXPECT_EQ(we.dtype, DType::F32);
  EXPECT_EQ(we.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(be.dtype, DType::F64);
  EXPECT_EQ(ne.dtype, DType::I32);
  EXPECT_TRUE(ne.shape.empty());
  EXPECT_EQ(std::memcmp(file.data() + header.dataOffset + we.begin, w.data(), 24), 0);
  EXPECT_EQ(std::memcmp(file.data() + header.dataOffset + be.begin, b.data(), 16), 0);
  EXPECT_EQ(std::memcmp(file.data() + header.dataOffset + ne.begin, n.data(), 4), 0);
  EXPECT_EQ(file.size(), header.dataOffset + ne.end);
}

// The file is written beside its destination and renamed over it, so a
// write that fails leaves the old file whole, and one that succeeds leaves
// no temporary.
TEST(Safetensors, AFailedWriteLeavesTheOldFile) {
  std::string path = tempPath("kept.safetensors"), temp = path + ".tmp";
  float x = 1, y = 2;
  ::rmdir(temp.c_str());
  writeSafetensors(path, {{"x", DType::F32, {1}, &x}}, {});
  std::string before = readAll(path);
  ASSERT_EQ(::mkdir(temp.c_str(), 0755), 0) << "a directory in the temporary's way";
  try {
    writeSafetensors(path, {{"x", DType::F32, {1}, &y}}, {});
    ADD_FAILURE() << "the write succeeded";
  } catch (const DataError &e) {
    EXPECT_EQ(std::string(e.what()).rfind(temp + ": cannot create (", 0), 0u) << e.what();
  }
  EXPECT_EQ(readAll(path), before);
  ::rmdir(temp.c_str());
  writeSafetensors(path, {{"x", DType::F32, {1}, &y}}, {});
  EXPECT_NE(readAll(path), before);
  EXPECT_EQ(readSafetensorsHeader(path).tensors.size(), 1u);
  struct stat st;
  EXPECT_NE(::stat(temp.c_str(), &st), 0) << "no temporary left behind";
}

TEST(Safetensors, DamagedFilesAreRefusedWithThePathAndTheReason) {
  std::string tooLong(8, '\0');
  tooLong[0] = 100;
  auto tensor = [](const std::string &entry, size_t dataBytes) {
    return withHeader(R"({"w": )" + entry + "}", dataBytes);
  };
  struct Case {
    std::string name, bytes, reason;
  } cases[] = {
      {"short", "abc", "not a safetensors file (shorter than its 8-byte header length)"},
      {"too-long", tooLong + "{}",
       "the header claims 100 bytes, but the file has 2 after the "
       "length"},
      {"not-json", withHeader("[1, 2"), "the header is not a JSON object"},
      {"metadata", withHeader(R"({"__metadata__": {"step": 3}})"),
       "metadata 'step' is not a string"},
      {"fields", tensor(R"({"dtype": "F32"})", 0),
       "tensor 'w': needs dtype, shape and data_offsets"},
      {"dtype", tensor(R"({"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]})", 2),
       "tensor 'w': unsupported dtype \"BF16\""},
      {"shape", tensor(R"({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]})", 4),
       "tensor 'w': shape entries must be non-negative integers"},
      {"outside", tensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]})", 8),
       "tensor 'w': data_offsets [0, 16) lie outside the 8 bytes of data"},
      {"size", tensor(R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})", 8),
       "tensor 'w': holds 8 bytes, which its shape and dtype do not match"},
  };
  for (const Case &c : cases) {
    std::string path = tempPath(c.name);
    writeAll(path, c.bytes);
    EXPECT_EQ(refusal(path), path + ": " + c.reason) << c.name;
  }
  std::string missing = tempPath("missing-does-not-exist");
  std::remove(missing.c_str());
  EXPECT_EQ(refusal(missing), missing + ": cannot open (No such file or directory)");
}

} // namespace
