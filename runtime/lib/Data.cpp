//===- Data.cpp - IDX reader, sampler and reproducible random numbers -----===//

#include "dtlrt/Data.h"

#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstring>

namespace dtlrt {

int64_t Dataset::sampleSize() const { return numElements(sampleShape); }

namespace {

/// Reads exactly `n` bytes or explains why not.
void readExactly(gzFile f, const std::string &path, void *dst, size_t n, const char *what) {
  size_t done = 0;
  while (done < n) {
    int got = gzread(f, static_cast<char *>(dst) + done, (unsigned)std::min<size_t>(n - done, 1u << 30));
    if (got <= 0) {
      int err;
      const char *msg = gzerror(f, &err);
      throw DataError(path + ": truncated or unreadable while reading the " + what + " (" +
                      std::to_string(done) + " of " + std::to_string(n) + " bytes" +
                      (err < 0 ? std::string(": ") + msg : std::string()) + ")");
    }
    done += got;
  }
}

uint32_t bigEndian(const unsigned char *b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
}

} // namespace

Dataset readIdx(const std::string &path, bool asLabels) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f)
    throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  unsigned char magic[4];
  readExactly(f, path, magic, 4, "IDX magic number");
  if (magic[0] != 0 || magic[1] != 0 || magic[3] < 1 || magic[3] > 4)
    throw DataError(path + ": not an IDX file (bad magic number)");
  int type = magic[2], rank = magic[3];
  if (type != 0x08 && type != 0x0C && type != 0x0D)
    throw DataError(path + ": IDX element type 0x" + std::to_string(type) +
                    " is not supported (u8, i32 and f32 are)");
  std::vector<unsigned char> header(4 * rank);
  readExactly(f, path, header.data(), header.size(), "IDX dimensions");
  Dataset ds;
  ds.path = path;
  ds.count = bigEndian(header.data());
  for (int i = 1; i < rank; ++i)
    ds.sampleShape.push_back(bigEndian(header.data() + 4 * i));
  int64_t total = ds.count * ds.sampleSize();
  if (ds.count == 0 || total > (int64_t(1) << 34))
    throw DataError(path + ": implausible IDX dimensions");
  if (type == 0x08) {
    std::vector<unsigned char> raw(total);
    readExactly(f, path, raw.data(), raw.size(), "IDX data");
    if (asLabels)
      ds.labels.assign(raw.begin(), raw.end());
    else
      for (unsigned char c : raw)
        ds.values.push_back(c / 255.0f);
  } else {
    std::vector<unsigned char> raw(total * 4);
    readExactly(f, path, raw.data(), raw.size(), "IDX data");
    for (int64_t i = 0; i < total; ++i) {
      uint32_t bits = bigEndian(raw.data() + 4 * i);
      float fv;
      std::memcpy(&fv, &bits, 4);
      int32_t iv = int32_t(bits);
      if (asLabels)
        ds.labels.push_back(type == 0x0C ? iv : int32_t(fv));
      else
        ds.values.push_back(type == 0x0C ? float(iv) : fv);
    }
  }
  return ds;
}

int64_t Sampler::at(int64_t pos) {
  int64_t epoch = pos / count_;
  if (epoch != epoch_) {
    order_.resize(count_);
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
  uint64_t h = seed ^ 0x9E3779B97F4A7C15ull;
  for (unsigned char c : stream)
    h = (h ^ c) * 0x100000001B3ull;
  // splitmix64 finaliser over the combined key.
  uint64_t z = h + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double uniformAt(uint64_t seed, const std::string &stream, uint64_t index) {
  return (hashIndex(seed, stream, index) >> 11) * (1.0 / 9007199254740992.0);
}

double normalAt(uint64_t seed, const std::string &stream, uint64_t index) {
  // Box-Muller on two independent uniforms of this index.
  double u1 = uniformAt(seed, stream, 2 * index), u2 = uniformAt(seed, stream, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
}

} // namespace dtlrt
