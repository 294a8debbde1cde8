//===- Checkpoint.cpp - gather and write safetensors ----------------------===//

#include "dtlrt/Checkpoint.h"
#include "dtlrt/Data.h"
#include "dtlrt/Init.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace dtlrt {

namespace {

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

/// The whole tensor on rank 0: each element is contributed by the one rank
/// that holds it at coordinate 0 along the axes that replicate it.
std::vector<unsigned char> gather(const SavedTensor &t, const Context &ctx, int rank) {
  const TensorSpec &spec = *t.spec;
  size_t element = sizeOf(spec.dtype);
  std::vector<unsigned char> global(numElements(spec.globalShape) * element, 0);
  Axes replicating;
  for (int a = 0; a < int(ctx.axisCount()); ++a) {
    bool splits = false;
    for (const Axes &axes : spec.dimAxes)
      for (int used : axes)
        splits |= used == a;
    if (!splits)
      replicating.push_back(a);
  }
  if (ctx.indexAlong(replicating) == 0)
    forEachLocal(spec, ctx, [&](int64_t local, int64_t index) {
      std::memcpy(global.data() + index * element,
                  static_cast<const unsigned char *>(t.local) + local * element, element);
    });
  MPI_Datatype type = spec.dtype == DType::F64 ? MPI_DOUBLE
                      : spec.dtype == DType::I32 ? MPI_INT
                                                 : MPI_FLOAT;
  int count = int(numElements(spec.globalShape));
  MPI_Reduce(rank == 0 ? MPI_IN_PLACE : global.data(), rank == 0 ? global.data() : nullptr,
             count, type, MPI_SUM, 0, MPI_COMM_WORLD);
  return global;
}

void writeAll(int fd, const void *data, size_t n, const std::string &path) {
  const char *p = static_cast<const char *>(data);
  while (n > 0) {
    ssize_t written = ::write(fd, p, n);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      throw DataError(path + ": cannot write (" + std::strerror(errno) + ")");
    }
    p += written;
    n -= size_t(written);
  }
}

} // namespace

void saveSafetensors(const std::string &path, const std::vector<SavedTensor> &tensors,
                     const std::map<std::string, std::string> &metadata, const Context &ctx,
                     int rank) {
  std::vector<std::vector<unsigned char>> data;
  for (const SavedTensor &t : tensors)
    data.push_back(gather(t, ctx, rank));
  if (rank != 0)
    return;

  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto &[key, value] : metadata) {
    header += (first ? "" : ",") + jsonString(key) + ":" + jsonString(value);
    first = false;
  }
  header += "}";
  size_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec &spec = *tensors[i].spec;
    std::string shape;
    for (size_t d = 0; d < spec.globalShape.size(); ++d)
      shape += (d ? "," : "") + std::to_string(spec.globalShape[d]);
    const char *dtype = spec.dtype == DType::F64 ? "F64" : spec.dtype == DType::I32 ? "I32" : "F32";
    header += "," + jsonString(spec.name) + ":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + data[i].size()) + "]}";
    offset += data[i].size();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' '); // the data starts 8-byte aligned

  std::string temp = path + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    throw DataError(temp + ": cannot create (" + std::strerror(errno) + ")");
  try {
    uint64_t length = header.size(); // little-endian on every supported host
    writeAll(fd, &length, sizeof length, temp);
    writeAll(fd, header.data(), header.size(), temp);
    for (const std::vector<unsigned char> &bytes : data)
      writeAll(fd, bytes.data(), bytes.size(), temp);
    if (::fsync(fd) != 0)
      throw DataError(temp + ": cannot sync (" + std::strerror(errno) + ")");
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(temp.c_str(), path.c_str()) != 0)
    throw DataError(path + ": cannot rename " + temp + " into place (" + std::strerror(errno) +
                    ")");
}

} // namespace dtlrt
