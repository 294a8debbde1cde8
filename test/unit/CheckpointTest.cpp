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

/// The DataError message readSafetensorsHeader throws on `bytes`.
std::string refusal(const std::string &name, const std::string &bytes) {
  std::string path = tempPath(name);
  writeAll(path, bytes);
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

TEST(Safetensors, AFailedWriteLeavesTheOldFile) {
  std::string dir = tempPath("no-such-dir");
  std::string path = tempPath("kept.safetensors");
  float x = 1;
  writeSafetensors(path, {{"x", DType::F32, {1}, &x}}, {});
  std::string before = readAll(path);
  EXPECT_THROW(writeSafetensors(dir + "/x.safetensors", {{"x", DType::F32, {1}, &x}}, {}),
               DataError);
  // Over an existing file: written beside it and renamed, so a reader sees
  // the old file or the new one, never half of one.
  float y = 2;
  writeSafetensors(path, {{"x", DType::F32, {1}, &y}}, {});
  EXPECT_NE(readAll(path), before);
  EXPECT_FALSE(std::ifstream(path + ".tmp").good()) << "no temporary left behind";
}

TEST(Safetensors, DamagedFilesAreRefusedWithThePathAndTheReason) {
  EXPECT_NE(refusal("short", "abc").find("shorter than its 8-byte header length"),
            std::string::npos);
  std::string tooLong(8, '\0');
  tooLong[0] = 100;
  EXPECT_NE(refusal("too-long", tooLong + "{}")
                .find("the header claims 100 bytes, but the file "
                      "has 2 after the length"),
            std::string::npos);
  EXPECT_NE(refusal("not-json", withHeader("[1, 2")).find("the header is not a JSON object"),
            std::string::npos);
  EXPECT_NE(refusal("metadata", withHeader(R"({"__metadata__": {"step": 3}})"))
                .find("metadata 'step' is not a string"),
            std::string::npos);
  EXPECT_NE(refusal("fields", withHeader(R"({"w": {"dtype": "F32"}})"))
                .find("tensor 'w': needs dtype, shape and data_offsets"),
            std::string::npos);
  EXPECT_NE(
      refusal("dtype",
              withHeader(R"({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}})", 2))
          .find("tensor 'w': unsupported dtype \"BF16\""),
      std::string::npos);
  EXPECT_NE(
      refusal("shape",
              withHeader(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4))
          .find("shape entries must be non-negative integers"),
      std::string::npos);
  EXPECT_NE(
      refusal("outside",
              withHeader(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8))
          .find("data_offsets [0, 16) lie outside the 8 bytes of data"),
      std::string::npos);
  EXPECT_NE(
      refusal("size",
              withHeader(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8))
          .find("holds 8 bytes, which its shape and dtype do not match"),
      std::string::npos);
  std::remove(tempPath("missing-does-not-exist").c_str());
  try {
    readSafetensorsHeader(tempPath("missing-does-not-exist"));
    ADD_FAILURE() << "a missing file was accepted";
  } catch (const DataError &e) {
    EXPECT_NE(std::string(e.what()).find("dtlrt-checkpoint-missing-does-not-exist: cannot open"),
              std::string::npos)
        << e.what();
  }
}

} // namespace
