//===- Checkpoint.cpp - gather and write safetensors ----------------------===//

#include "dtlrt/Checkpoint.h"
#include "dtlrt/Data.h"
#include "dtlrt/Init.h"

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace dtlrt {

namespace {

const char *dtypeName(DType t) { return t == DType::F64 ? "F64" : t == DType::I32 ? "I32" : "F32"; }

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
  MPI_Datatype type = spec.dtype == DType::F64   ? MPI_DOUBLE
                      : spec.dtype == DType::I32 ? MPI_INT
                                                 : MPI_FLOAT;
  forEachPiece(numElements(spec.globalShape), Context::maxElementsPerCall(),
               [&](int64_t offset, int64_t n) {
                 unsigned char *at = global.data() + offset * element;
                 MPI_Reduce(rank == 0 ? MPI_IN_PLACE : at, rank == 0 ? at : nullptr, int(n), type,
                            MPI_SUM, 0, MPI_COMM_WORLD);
               });
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

void refuseToReplace(const std::string &path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return;
    throw DataError(path + ": cannot inspect (" + std::strerror(errno) + ")");
  }
  if (S_ISREG(st.st_mode))
    return;
  const char *what = S_ISDIR(st.st_mode)                          ? "a directory"
                     : S_ISLNK(st.st_mode)                        ? "a symbolic link"
                     : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                     : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                  : "not a regular file";
  throw DataError(path + ": is " + std::string(what) +
                  "; refusing to write over it (name a regular file or a new path)");
}

void syncDirectory(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw DataError(dir + ": cannot open the directory to sync it (" + std::strerror(errno) + ")");
  int status = ::fsync(fd);
  int error = errno;
  ::close(fd);
  if (status != 0)
    throw DataError(dir + ": cannot sync (" + std::strerror(error) + ")");
}

std::string parentDirectory(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

uint32_t crc32Of(const void *data, size_t bytes, uint32_t crc) {
  const Bytef *p = static_cast<const Bytef *>(data);
  // zlib takes the length as a uInt: feed it in pieces.
  while (bytes > 0) {
    uInt piece = uInt(std::min<size_t>(bytes, 1u << 30));
    crc = uint32_t(::crc32(crc, p, piece));
    p += piece;
    bytes -= piece;
  }
  return crc;
}

void writeSafetensors(const std::string &path, const std::vector<GlobalTensor> &tensors,
                      const std::map<std::string, std::string> &metadata) {
  refuseToReplace(path);
  nlohmann::ordered_json header;
  header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const GlobalTensor &t : tensors) {
    uint64_t bytes = numElements(t.shape) * sizeOf(t.dtype);
    header[t.name] = {{"dtype", dtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' '); // the data starts 8-byte aligned

  // A temporary of this process's own, created exclusively and never
  // through a link, so nothing else is truncated or followed.
  std::string temp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    throw DataError(temp + ": cannot create (" + std::strerror(errno) + ")");
  try {
    uint64_t length = text.size(); // little-endian on every supported host
    writeAll(fd, &length, sizeof length, temp);
    writeAll(fd, text.data(), text.size(), temp);
    for (const GlobalTensor &t : tensors)
      writeAll(fd, t.data, numElements(t.shape) * sizeOf(t.dtype), temp);
    if (::fsync(fd) != 0)
      throw DataError(temp + ": cannot sync (" + std::strerror(errno) + ")");
    if (::close(fd) != 0) {
      fd = -1;
      throw DataError(temp + ": cannot close (" + std::strerror(errno) + ")");
    }
    fd = -1;
    // Checked again: the path may have become something else meanwhile.
    refuseToReplace(path);
    if (std::rename(temp.c_str(), path.c_str()) != 0)
      throw DataError(path + ": cannot rename " + temp + " into place (" + std::strerror(errno) +
                      ")");
  } catch (...) {
    if (fd >= 0)
      ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  syncDirectory(parentDirectory(path));
}

void saveSafetensors(const std::string &path, const std::vector<SavedTensor> &tensors,
                     const std::map<std::string, std::string> &metadata, const Context &ctx,
                     int rank) {
  std::vector<std::vector<unsigned char>> data;
  for (const SavedTensor &t : tensors)
    data.push_back(gather(t, ctx, rank));
  if (rank != 0)
    return;
  std::vector<GlobalTensor> global;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec &spec = *tensors[i].spec;
    global.push_back({spec.name, spec.dtype, spec.globalShape, data[i].data()});
  }
  writeSafetensors(path, global, metadata);
}

SafetensorsHeader readSafetensorsHeader(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  struct stat st;
  if (!in || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  uint64_t fileSize = st.st_size, length = 0;
  if (fileSize < 8 || !in.read(reinterpret_cast<char *>(&length), 8))
    throw DataError(path + ": not a safetensors file (shorter than its 8-byte header length)");
  if (length > fileSize - 8)
    throw DataError(path + ": the header claims " + std::to_string(length) + " bytes, but the " +
                    "file has " + std::to_string(fileSize - 8) + " after the length");
  std::string text(length, '\0');
  if (!in.read(text.data(), std::streamsize(length)))
    throw DataError(path + ": cannot read the header");
  nlohmann::ordered_json json =
      nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object())
    throw DataError(path + ": the header is not a JSON object");
  SafetensorsHeader header;
  header.path = path;
  header.dataOffset = 8 + length;
  uint64_t dataSize = fileSize - header.dataOffset;
  for (auto &[key, value] : json.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw DataError(path + ": __metadata__ is not an object");
      for (auto &[mkey, mvalue] : value.items()) {
        if (!mvalue.is_string())
          throw DataError(path + ": metadata '" + mkey + "' is not a string");
        header.metadata[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string &what) {
      return DataError(path + ": tensor '" + key + "': " + what);
    };
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
        !value.contains("data_offsets"))
      throw bad("needs dtype, shape and data_offsets");
    SafetensorsEntry entry;
    entry.name = key;
    const nlohmann::ordered_json &dtype = value["dtype"];
    if (dtype == "F32")
      entry.dtype = DType::F32;
    else if (dtype == "F64")
      entry.dtype = DType::F64;
    else if (dtype == "I32")
      entry.dtype = DType::I32;
    else
      throw bad("unsupported dtype " + dtype.dump());
    const nlohmann::ordered_json &shape = value["shape"], &offsets = value["data_offsets"];
    if (!shape.is_array() || !offsets.is_array() || offsets.size() != 2)
      throw bad("shape must be a list and data_offsets a pair");
    for (const nlohmann::ordered_json &d : shape) {
      if (!d.is_number_unsigned())
        throw bad("shape entries must be non-negative integers");
      entry.shape.push_back(d.get<int64_t>());
    }
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw bad("data_offsets must be non-negative integers");
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    if (entry.end < entry.begin || entry.end > dataSize)
      throw bad("data_offsets [" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) +
                ") lie outside the " + std::to_string(dataSize) + " bytes of data");
    if (entry.end - entry.begin != uint64_t(numElements(entry.shape)) * sizeOf(entry.dtype))
      throw bad("holds " + std::to_string(entry.end - entry.begin) +
                " bytes, which its shape and dtype do not match");
    header.tensors.push_back(std::move(entry));
  }
  return header;
}

} // namespace dtlrt
