//===- Data.cpp - IDX reader, sampler and reproducible random numbers -----===//

#include "dtlrt/Data.h"
#include "dtlrt/Hash.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace dtlrt {

namespace {

uint32_t bigEndian(const unsigned char *b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
}

int elementBytes(int type) { return type == 0x08 ? 1 : 4; }

/// Data comes from regular files: a FIFO or a device would be read forever
/// (or block in open), a directory cannot be read at all.
void requireRegularFile(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode))
    throw DataError(path + ": not a regular file (" +
                    (S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISFIFO(st.st_mode) ? "a FIFO"
                                            : "a device or socket") +
                    "); data must be a file");
}

/// The whole decompressed content of a gzip file.
std::shared_ptr<std::vector<unsigned char>> gunzip(const std::string &path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f)
    throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  auto bytes = std::make_shared<std::vector<unsigned char>>();
  unsigned char chunk[1 << 16];
  int got;
  while ((got = gzread(f, chunk, sizeof chunk)) > 0)
    bytes->insert(bytes->end(), chunk, chunk + got);
  // A stream cut short reads as a short read; gzerror tells it from the end.
  int err = Z_OK;
  std::string message = gzerror(f, &err);
  gzclose(f);
  if (got < 0 || err != Z_OK)
    throw DataError(path + ": corrupt gzip data after " + std::to_string(bytes->size()) +
                    " bytes (" + message + ")");
  return bytes;
}

/// A read-only mapping of a whole file (its pages are read when touched).
std::shared_ptr<const void> mapFile(const std::string &path, size_t &size) {
  requireRegularFile(path);
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0)
    throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw DataError(path + ": not a regular file");
  }
  size = st.st_size;
  void *base = size ? mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  close(fd);
  if (base == MAP_FAILED)
    throw DataError(path + ": cannot map (" + std::strerror(errno) + ")");
  return std::shared_ptr<const void>(base, [size](const void *p) {
    if (p)
      munmap(const_cast<void *>(p), size);
  });
}

bool isGzip(const std::string &path) {
  requireRegularFile(path);
  unsigned char magic[2] = {0, 0};
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  size_t got = std::fread(magic, 1, 2, f);
  std::fclose(f);
  return got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

} // namespace

Dataset readIdx(const std::string &path) {
  Dataset ds;
  ds.path = path;
  const unsigned char *bytes;
  size_t size = 0;
  if (isGzip(path)) {
    auto buffer = gunzip(path);
    bytes = buffer->data();
    size = buffer->size();
    ds.storage = buffer;
  } else {
    ds.storage = mapFile(path, size);
    bytes = static_cast<const unsigned char *>(ds.storage.get());
  }
  if (size < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[3] < 1 || bytes[3] > 4)
    throw DataError(path + ": not an IDX file (bad magic number)");
  int type = bytes[2], rank = bytes[3];
  if (type != 0x08 && type != 0x0C && type != 0x0D) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", unsigned(type));
    throw DataError(path + ": IDX element type " + hex +
                    " is not supported (0x08 u8, 0x0C i32 and 0x0D f32 are)");
  }
  size_t headerBytes = 4 + 4 * size_t(rank);
  if (size < headerBytes)
    throw DataError(path + ": truncated in the IDX dimensions");
  ds.count = bigEndian(bytes + 4);
  for (int i = 1; i < rank; ++i)
    ds.sampleShape.push_back(bigEndian(bytes + 4 + 4 * i));
  ds.elementType = type;
  int64_t total = ds.count * ds.sampleSize();
  if (ds.count == 0 || total > (int64_t(1) << 34))
    throw DataError(path + ": implausible IDX dimensions");
  size_t dataBytes = size_t(total) * elementBytes(type);
  if (size - headerBytes < dataBytes)
    throw DataError(path + ": truncated: the header promises " + std::to_string(dataBytes) +
                    " bytes of data, the file has " + std::to_string(size - headerBytes));
  ds.elements = bytes + headerBytes;
  return ds;
}

TokenFile readTokens(const std::string &path) {
  TokenFile file;
  file.path = path;
  size_t size = 0;
  file.storage = mapFile(path, size);
  const unsigned char *bytes = static_cast<const unsigned char *>(file.storage.get());
  constexpr size_t kHeaderBytes = 256 * sizeof(int32_t);
  if (size < kHeaderBytes)
    throw DataError(path + ": not a token shard (" + std::to_string(size) +
                    " bytes, shorter than the 1024-byte header)");
  int32_t header[3];
  std::memcpy(header, bytes, sizeof header);
  if (header[0] != TokenFile::kMagic)
    throw DataError(path + ": not a token shard (magic " + std::to_string(header[0]) +
                    ", expected " + std::to_string(TokenFile::kMagic) + ")");
  if (header[1] != TokenFile::kVersion)
    throw DataError(path + ": token shard version " + std::to_string(header[1]) +
                    " is not supported (1 is: uint16 tokens)");
  file.count = header[2];
  size_t expected = kHeaderBytes + size_t(std::max(file.count, int64_t(0))) * sizeof(uint16_t);
  if (file.count <= 0 || size != expected)
    throw DataError(path + ": the header promises " + std::to_string(file.count) + " tokens (" +
                    std::to_string(expected) + " bytes), the file has " + std::to_string(size) +
                    " bytes");
  file.tokens = reinterpret_cast<const uint16_t *>(bytes + kHeaderBytes);
  return file;
}

float Dataset::value(int64_t sample, int64_t col) const {
  int64_t i = sample * sampleSize() + col;
  if (elementType == 0x08)
    return elements[i] / 255.0f;
  uint32_t bits = bigEndian(elements + 4 * i);
  if (elementType == 0x0C)
    return float(int32_t(bits));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

int32_t Dataset::label(int64_t sample) const {
  if (elementType == 0x08)
    return elements[sample];
  uint32_t bits = bigEndian(elements + 4 * sample);
  if (elementType == 0x0C)
    return int32_t(bits);
  float f;
  std::memcpy(&f, &bits, 4);
  return int32_t(f);
}

int64_t Sampler::at(int64_t pos) {
  int64_t epoch = pos / count_;
  if (epoch != epoch_) {
    for (int64_t i = 0; i < count_; ++i)
      order_[i] = i;
    // Fisher-Yates with our own hash, so the order is the same everywhere.
    for (int64_t i = count_ - 1; i > 0; --i)
      std::swap(order_[i], order_[hashIndex(seed_, "epoch" + std::to_string(epoch), i) % (i + 1)]);
    epoch_ = epoch;
  }
  return order_[pos % count_];
}

uint64_t hashIndex(uint64_t seed, const std::string &stream, uint64_t index) {
  uint64_t h = hashStart(seed);
  for (unsigned char c : stream)
    h = hashChar(h, c);
  return hashAt(h, index);
}

double uniformAt(uint64_t seed, const std::string &stream, uint64_t index) {
  return unitInterval(hashIndex(seed, stream, index));
}

double normalAt(uint64_t seed, const std::string &stream, uint64_t index) {
  // Box-Muller on two independent uniforms of this index.
  double u1 = uniformAt(seed, stream, 2 * index), u2 = uniformAt(seed, stream, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
}

} // namespace dtlrt
