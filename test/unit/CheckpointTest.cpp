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

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
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

/// The names in `dir`, sorted.
std::vector<std::string> entriesOf(const std::string &dir) {
  std::vector<std::string> names;
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        names.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

/// A fresh, empty directory for one test.
std::string freshDir(const std::string &name) {
  std::string dir = tempPath(name);
  for (const std::string &entry : entriesOf(dir))
    ::unlink((dir + "/" + entry).c_str());
  ::rmdir(dir.c_str());
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

std::string writeRefusal(const std::string &path) {
  float x = 1;
  try {
    writeSafetensors(path, {{"x", DType::F32, {1}, &x}}, {});
  } catch (const DataError &e) {
    return e.what();
  }
  return "(written)";
}

// The file is written beside its destination and renamed over it: a write
// that fails midway (here at the file-size limit) leaves the old file whole
// and no temporary behind.
TEST(Safetensors, AFailedWriteLeavesTheOldFile) {
  std::string dir = freshDir("kept"), path = dir + "/kept.safetensors";
  float x = 1;
  writeSafetensors(path, {{"x", DType::F32, {1}, &x}}, {});
  std::string before = readAll(path);
  std::vector<float> big(100000, 2.f);
  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  std::signal(SIGXFSZ, SIG_IGN); // the write fails with EFBIG instead
  struct rlimit small = {4096, saved.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string error;
  try {
    writeSafetensors(path, {{"x", DType::F32, {int64_t(big.size())}, big.data()}}, {});
  } catch (const DataError &e) {
    error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  EXPECT_EQ(error.rfind(path + ".tmp.", 0), 0u) << error;
  EXPECT_NE(error.find(": cannot write (File too large)"), std::string::npos) << error;
  EXPECT_EQ(readAll(path), before);
  EXPECT_EQ(entriesOf(dir), std::vector<std::string>{"kept.safetensors"});
  writeSafetensors(path, {{"x", DType::F32, {1}, big.data()}}, {});
  EXPECT_NE(readAll(path), before);
  EXPECT_EQ(entriesOf(dir), std::vector<std::string>{"kept.safetensors"});
}

// Only a regular file is replaced: a directory, a FIFO, a link or a device
// in its place is refused before anything is written, and left as it was.
TEST(Safetensors, ANonRegularTargetIsRefusedAndLeftAlone) {
  std::string dir = freshDir("refused");
  std::string directory = dir + "/a-directory", fifo = dir + "/a-fifo", link = dir + "/a-link",
              target = dir + "/target";
  ASSERT_EQ(::mkdir(directory.c_str(), 0755), 0);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  writeAll(target, "not a checkpoint");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  const std::string refusing = "; refusing to write over it (name a regular file or a new path)";
  EXPECT_EQ(writeRefusal(directory), directory + ": is a directory" + refusing);
  EXPECT_EQ(writeRefusal(fifo), fifo + ": is a FIFO" + refusing);
  EXPECT_EQ(writeRefusal(link), link + ": is a symbolic link" + refusing);
  EXPECT_EQ(writeRefusal("/dev/null"), "/dev/null: is a device" + refusing);
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null is still a device";
  EXPECT_EQ(readAll(target), "not a checkpoint");
  EXPECT_EQ(entriesOf(dir),
            (std::vector<std::string>{"a-directory", "a-fifo", "a-link", "target"}));
  ::unlink(fifo.c_str());
  ::unlink(link.c_str());
  ::unlink(target.c_str());
  ::rmdir(directory.c_str());
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
