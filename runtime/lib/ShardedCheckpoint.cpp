//===- ShardedCheckpoint.cpp - write and read step-N/ directories ---------===//

#include "dtlrt/ShardedCheckpoint.h"

#include "dtlrt/Checkpoint.h"
#include "dtlrt/Data.h"
#include "dtlrt/Hash.h"

#include <nlohmann/json.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>

namespace dtlrt {

namespace {

using json = nlohmann::ordered_json;

constexpr const char *kFormat = "dtlc-checkpoint";
constexpr int kVersion = 1;

const char *dtypeName(DType t) { return t == DType::F64 ? "F64" : t == DType::I32 ? "I32" : "F32"; }

std::string shapeText(DType t, const std::vector<int64_t> &shape) {
  std::string s = t == DType::F64 ? "f64[" : t == DType::I32 ? "i32[" : "f32[";
  for (size_t d = 0; d < shape.size(); ++d)
    s += (d ? ", " : "") + std::to_string(shape[d]);
  return s + "]";
}

/// A block of a global tensor: where it starts and its extent per dimension.
struct Box {
  std::vector<int64_t> offset, shape;
};

/// This rank's block of `spec` (blocks are contiguous ranges per dimension:
/// the rank's index along the dimension's axes times the local extent).
Box localBox(const TensorSpec &spec, const Context &ctx) {
  Box box{std::vector<int64_t>(spec.localShape.size()), spec.localShape};
  for (size_t d = 0; d < box.shape.size(); ++d)
    box.offset[d] = ctx.indexAlong(spec.dimAxes[d]) * spec.localShape[d];
  return box;
}

/// A part of this rank's block that is one box of the tensor as declared:
/// the whole block, or, for an interleaved tensor, each run of it that is
/// consecutive in the declared order.
struct Part {
  Box declared;
  std::vector<int64_t> localOffset; ///< where it starts in the rank's block
};

std::vector<Part> localParts(const TensorSpec &spec, const Context &ctx) {
  Box block = localBox(spec, ctx);
  std::vector<int64_t> zero(block.shape.size(), 0);
  int d = spec.interleaveDim;
  if (d < 0)
    return {{block, zero}};
  std::vector<Part> parts;
  int64_t end = block.offset[d] + block.shape[d];
  for (int64_t stored = block.offset[d]; stored < end;) {
    auto [declared, run] = spec.declaredRun(stored);
    run = std::min(run, end - stored);
    if (declared < 0) { // a hole
      stored += run;
      continue;
    }
    Part part{block, zero};
    part.declared.offset[d] = declared;
    part.declared.shape[d] = run;
    part.localOffset[d] = stored - block.offset[d];
    parts.push_back(part);
    stored += run;
  }
  return parts;
}

/// Copies the elements `from` and `to` share, each box's data row-major in
/// its own extent; returns how many.
int64_t copyOverlap(const Box &from, const unsigned char *src, const Box &to, unsigned char *dst,
                    size_t element) {
  size_t rank = from.shape.size();
  std::vector<int64_t> lo(rank), extent(rank);
  int64_t total = 1;
  for (size_t d = 0; d < rank; ++d) {
    lo[d] = std::max(from.offset[d], to.offset[d]);
    int64_t hi = std::min(from.offset[d] + from.shape[d], to.offset[d] + to.shape[d]);
    if (hi <= lo[d])
      return 0;
    extent[d] = hi - lo[d];
    total *= extent[d];
  }
  if (rank == 0) {
    std::memcpy(dst, src, element);
    return 1;
  }
  // Runs along the last dimension, for every index of the others.
  std::vector<int64_t> index(rank, 0);
  int64_t run = extent[rank - 1];
  for (int64_t done = 0; done < total; done += run) {
    int64_t srcAt = 0, dstAt = 0;
    for (size_t d = 0; d < rank; ++d) {
      srcAt = srcAt * from.shape[d] + (lo[d] + index[d] - from.offset[d]);
      dstAt = dstAt * to.shape[d] + (lo[d] + index[d] - to.offset[d]);
    }
    std::memcpy(dst + dstAt * element, src + srcAt * element, size_t(run) * element);
    for (int d = int(rank) - 2; d >= 0; --d) {
      if (++index[d] < extent[d])
        break;
      index[d] = 0;
    }
  }
  return total;
}

/// The mesh axes that do not split `spec`: its holders along them are replicas.
Axes replicatingAxes(const TensorSpec &spec, const Context &ctx) {
  Axes axes;
  for (int a = 0; a < int(ctx.axisCount()); ++a) {
    bool splits = false;
    for (const Axes &dim : spec.dimAxes)
      splits |= std::find(dim.begin(), dim.end(), a) != dim.end();
    if (!splits)
      axes.push_back(a);
  }
  return axes;
}

bool isCheckpointName(const std::string &name) {
  static const std::regex pattern("step-[0-9]+(\\.tmp|\\.old)?|latest(\\.tmp)?");
  return std::regex_match(name, pattern);
}

/// A file's kind without following a link: 'd'irectory, 'f'ile, 'o'ther,
/// or 0 when it does not exist.
char kindOf(const std::string &path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return 0;
    throw DataError(path + ": cannot inspect (" + std::strerror(errno) + ")");
  }
  return S_ISDIR(st.st_mode) ? 'd' : S_ISREG(st.st_mode) ? 'f' : 'o';
}

std::vector<std::string> entriesOf(const std::string &dir) {
  std::vector<std::string> names;
  DIR *d = ::opendir(dir.c_str());
  if (!d)
    throw DataError(dir + ": cannot list (" + std::strerror(errno) + ")");
  while (dirent *e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
      names.push_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

/// Removes a checkpoint directory this program wrote: only the regular
/// files it writes there (rank files, the index, their temporaries), then
/// the directory; anything else keeps it, and is said.
void removeCheckpointDir(const std::string &dir) {
  if (kindOf(dir) != 'd')
    return;
  static const std::regex ours("(rank-[0-9]+\\.safetensors|index\\.json)(\\.tmp(\\.[0-9]+)?)?");
  for (const std::string &name : entriesOf(dir)) {
    std::string path = dir + "/" + name;
    if (std::regex_match(name, ours) && kindOf(path) == 'f')
      ::unlink(path.c_str());
  }
  if (::rmdir(dir.c_str()) != 0)
    std::fprintf(stderr, "warning: %s: left in place (%s): it holds files dtlc did not write\n",
                 dir.c_str(), std::strerror(errno));
}

/// Writes a small text file atomically: a temporary created exclusively,
/// synced, renamed over `path` (which must be a regular file or absent).
void writeTextFile(const std::string &path, const std::string &text) {
  refuseToReplace(path);
  std::string temp = path + ".tmp";
  if (kindOf(temp) == 'f')
    ::unlink(temp.c_str()); // left by a crash
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    throw DataError(temp + ": cannot create (" + std::strerror(errno) + ")");
  bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
  int error = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
    if (ok)
      error = errno;
    ::unlink(temp.c_str());
    throw DataError(path + ": cannot write (" + std::strerror(error) + ")");
  }
}

std::string readTextFile(const std::string &path) {
  if (kindOf(path) != 'f')
    throw DataError(path + ": missing (or not a regular file)");
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof())
    throw DataError(path + ": cannot read");
  return text;
}

int64_t stepOf(const std::string &name) { return std::stoll(name.substr(5)); }

/// Keeps the newest `keepLast` complete checkpoints up to `step` (newer
/// ones belong to a run that was resumed from an older checkpoint and are
/// left alone).
void prune(const std::string &root, int64_t keepLast, int64_t step) {
  if (keepLast <= 0)
    return;
  static const std::regex complete("step-[0-9]+");
  std::vector<std::pair<int64_t, std::string>> steps;
  for (const std::string &name : entriesOf(root))
    if (std::regex_match(name, complete) && stepOf(name) <= step)
      steps.push_back({stepOf(name), name});
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + size_t(keepLast) < steps.size(); ++i) {
    // Renamed first: a crash while deleting must not leave a step-N that
    // looks complete and is not.
    std::string dir = root + "/" + steps[i].second, doomed = dir + ".old";
    removeCheckpointDir(doomed);
    if (std::rename(dir.c_str(), doomed.c_str()) == 0)
      removeCheckpointDir(doomed);
  }
}

/// What crashed saves and prunes left (step-N.tmp, step-N.old): only one job
/// writes a checkpoint dir at a time, so none of it is in use.
void removeLeftovers(const std::string &root) {
  static const std::regex leftover("step-[0-9]+\\.(tmp|old)");
  for (const std::string &name : entriesOf(root))
    if (std::regex_match(name, leftover))
      removeCheckpointDir(root + "/" + name);
}

void makeDirectories(const std::string &path) {
  if (path.empty() || kindOf(path) == 'd')
    return;
  std::string parent = parentDirectory(path);
  if (parent != path)
    makeDirectories(parent);
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    throw DataError(path + ": cannot create the directory (" + std::strerror(errno) + ")");
}

/// Gathers each rank's text on rank 0 (in rank order there; empty elsewhere).
std::vector<std::string> gatherText(const std::string &mine, int rank) {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  int length = int(mine.size());
  std::vector<int> lengths(static_cast<size_t>(world)), offsets(static_cast<size_t>(world));
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < world; ++r) {
    offsets[r] = total;
    total += lengths[r];
  }
  std::string all(size_t(rank == 0 ? total : 0), '\0');
  MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
              0, MPI_COMM_WORLD);
  std::vector<std::string> texts;
  if (rank == 0)
    for (int r = 0; r < world; ++r)
      texts.push_back(all.substr(size_t(offsets[r]), size_t(lengths[r])));
  return texts;
}

json positionJson(const TrainPosition &p) {
  int64_t perEpoch = std::max<int64_t>(p.samplesPerEpoch, 1);
  return {{"step", p.step},
          {"steps", p.totalSteps},
          {"seed", p.seed},
          {"skipped_in_a_row", p.skippedInARow},
          {"data",
           {{"train",
             {{"samples_seen", p.samplesSeen},
              {"samples_per_epoch", p.samplesPerEpoch},
              {"epoch", p.samplesSeen / perEpoch},
              {"index", p.samplesSeen % perEpoch}}}}}};
}

TrainPosition positionFrom(const json &j) {
  TrainPosition p;
  p.step = j.at("step").get<int64_t>();
  p.totalSteps = j.at("steps").get<int64_t>();
  p.seed = j.at("seed").get<int64_t>();
  p.skippedInARow = j.at("skipped_in_a_row").get<int64_t>();
  const json &train = j.at("data").at("train");
  p.samplesSeen = train.at("samples_seen").get<int64_t>();
  p.samplesPerEpoch = train.at("samples_per_epoch").get<int64_t>();
  return p;
}

} // namespace

std::string stateSignature(const std::vector<StateTensor> &tensors) {
  std::vector<std::string> lines;
  for (const StateTensor &t : tensors)
    lines.push_back(t.spec->name + ":" + shapeText(t.spec->dtype, t.spec->globalShape));
  std::sort(lines.begin(), lines.end());
  uint64_t h = hashStart(0);
  for (const std::string &line : lines)
    for (char c : line + "\n")
      h = hashChar(h, (unsigned char)c);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  return hex;
}

void throwIfAnyRankFailed(const std::string &error, int rank) {
  int mine = error.empty() ? INT_MAX : rank, first = INT_MAX;
  int failed = !error.empty(), failures = 0, world = 1;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == INT_MAX)
    return;
  MPI_Allreduce(&failed, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  int length = rank == first ? int(error.size()) : 0;
  MPI_Bcast(&length, 1, MPI_INT, first, MPI_COMM_WORLD);
  std::string message = rank == first ? error : std::string(size_t(length), '\0');
  MPI_Bcast(message.data(), length, MPI_CHAR, first, MPI_COMM_WORLD);
  if (failures < world)
    message = "rank " + std::to_string(first) + ": " + message;
  throw DataError(message);
}

void checkCheckpointRoot(const std::string &root) {
  char kind = kindOf(root);
  if (kind == 0)
    return;
  if (kind != 'd') {
    struct stat st;
    if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw DataError(root + ": not a directory; checkpoints need a directory of their own");
    // A link to a directory the user named: used as it is.
  }
  for (const std::string &name : entriesOf(root))
    if (!isCheckpointName(name))
      throw DataError(root + ": holds '" + name +
                      "', which is not a checkpoint; name a new or empty directory for "
                      "checkpoints (--checkpoint-dir)");
}

std::string latestCheckpoint(const std::string &root) {
  std::string pointer = root + "/latest";
  if (kindOf(root) == 0 || kindOf(pointer) == 0)
    return "";
  std::string name = readTextFile(pointer);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' '))
    name.pop_back();
  static const std::regex complete("step-[0-9]+");
  if (!std::regex_match(name, complete))
    throw DataError(pointer + ": names '" + name + "', not a checkpoint (step-N)");
  std::string dir = root + "/" + name;
  if (kindOf(dir + "/index.json") != 'f')
    throw DataError(pointer + ": names " + dir + ", which has no index.json");
  return dir;
}

std::string saveCheckpoint(const std::string &root, int64_t keepLast, const ModelIdentity &identity,
                           const TrainPosition &position, const std::vector<StateTensor> &tensors,
                           Context &ctx, int rank) {
  std::string name = "step-" + std::to_string(position.step);
  std::string final = root + "/" + name, temp = final + ".tmp";
  std::string error;
  if (rank == 0) {
    try {
      makeDirectories(root);
      checkCheckpointRoot(root);
      removeLeftovers(root);
      if (::mkdir(temp.c_str(), 0755) != 0)
        throw DataError(temp + ": cannot create the directory (" + std::strerror(errno) + ")");
    } catch (const DataError &e) {
      error = e.what();
    }
  }
  throwIfAnyRankFailed(error, rank);

  // This rank's slices: the blocks it holds that it is the writer of (of a
  // block's replicas, tensor i is written by replica i mod their count, so
  // replicated tensors spread over the ranks).
  char fileName[40];
  std::snprintf(fileName, sizeof fileName, "rank-%05d.safetensors", rank);
  json slices = json::array();
  try {
    std::vector<GlobalTensor> written;
    std::vector<std::vector<unsigned char>> copies; // of an interleaved block's parts
    std::map<std::string, std::string> metadata{{"format", "dtlc-shard"}};
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorSpec &spec = *tensors[i].spec;
      Axes replicating = replicatingAxes(spec, ctx);
      if (ctx.indexAlong(replicating) != int(i % size_t(ctx.spanOf(replicating))))
        continue;
      std::vector<Part> parts = localParts(spec, ctx);
      size_t element = sizeOf(spec.dtype);
      Box block{std::vector<int64_t>(spec.localShape.size(), 0), spec.localShape};
      for (size_t k = 0; k < parts.size(); ++k) {
        const Part &part = parts[k];
        // A part of an interleaved block is its own tensor in the file.
        std::string entry = parts.size() == 1 ? spec.name : spec.name + "#" + std::to_string(k);
        const void *data = tensors[i].local;
        if (parts.size() > 1) {
          std::vector<unsigned char> &copy =
              copies.emplace_back(size_t(numElements(part.declared.shape)) * element);
          copyOverlap(block, static_cast<const unsigned char *>(tensors[i].local),
                      Box{part.localOffset, part.declared.shape}, copy.data(), element);
          data = copy.data();
        }
        uint32_t crc = crc32Of(data, size_t(numElements(part.declared.shape)) * element);
        written.push_back({entry, spec.dtype, part.declared.shape, data});
        json offset = part.declared.offset;
        metadata["offset." + entry] = offset.dump();
        metadata["crc32." + entry] = std::to_string(crc);
        json slice = {{"tensor", spec.name},
                      {"file", fileName},
                      {"offset", part.declared.offset},
                      {"shape", part.declared.shape},
                      {"crc32", crc}};
        if (entry != spec.name)
          slice["entry"] = entry;
        slices.push_back(slice);
      }
    }
    if (!written.empty())
      writeSafetensors(temp + "/" + fileName, written, metadata);
  } catch (const DataError &e) {
    error = e.what();
  }
  std::vector<std::string> allSlices = gatherText(slices.dump(), rank);
  int failed = !error.empty(), anyFailed = 0;
  MPI_Allreduce(&failed, &anyFailed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);

  if (rank == 0) {
    try {
      if (anyFailed)
        throw DataError("");
      json index;
      index["format"] = kFormat;
      index["version"] = kVersion;
      index["model"] = identity.model;
      index["source"] = identity.source;
      index["signature"] = identity.signature;
      json mesh = json::object();
      for (size_t a = 0; a < identity.axisNames.size(); ++a)
        mesh[identity.axisNames[a]] = identity.axisSizes[a];
      index["mesh"] = mesh;
      index["state"] = positionJson(position);
      json byName = json::object();
      for (const StateTensor &t : tensors)
        byName[t.spec->name] = {{"role", t.spec->role == Role::Param ? "param" : "opt_state"},
                                {"dtype", dtypeName(t.spec->dtype)},
                                {"shape", t.spec->globalShape},
                                {"slices", json::array()}};
      for (const std::string &text : allSlices)
        for (json &slice : json::parse(text)) {
          std::string tensor = slice["tensor"];
          slice.erase("tensor");
          byName[tensor]["slices"].push_back(slice);
        }
      index["tensors"] = byName;
      writeTextFile(temp + "/index.json", index.dump(1) + "\n");
      syncDirectory(temp);
      // A checkpoint of this step already there (from a run resumed from an
      // older one) is moved aside first, then removed once the new one is in.
      std::string old = final + ".old";
      bool replacing = kindOf(final) == 'd';
      if (replacing) {
        removeCheckpointDir(old);
        if (std::rename(final.c_str(), old.c_str()) != 0)
          throw DataError(final + ": cannot move the older checkpoint aside (" +
                          std::strerror(errno) + ")");
      }
      if (std::rename(temp.c_str(), final.c_str()) != 0)
        throw DataError(final + ": cannot rename " + temp + " into place (" + std::strerror(errno) +
                        ")");
      syncDirectory(root);
      writeTextFile(root + "/latest", name + "\n");
      syncDirectory(root);
      if (replacing)
        removeCheckpointDir(old);
      prune(root, keepLast, position.step);
    } catch (const DataError &e) {
      if (!anyFailed)
        error = e.what();
      removeCheckpointDir(temp);
    }
  }
  throwIfAnyRankFailed(error, rank);
  return final;
}

TrainPosition loadCheckpoint(const std::string &where, const ModelIdentity &identity,
                             const std::vector<StateTensor> &tensors, Context &ctx, int rank) {
  std::string error;
  TrainPosition position;
  try {
    std::string dir = where;
    while (dir.size() > 1 && dir.back() == '/')
      dir.pop_back();
    if (kindOf(dir + "/index.json") == 0 && kindOf(dir + "/latest") != 0)
      dir = latestCheckpoint(dir);
    std::string indexPath = dir + "/index.json";
    if (kindOf(dir) != 'd')
      throw DataError(dir + ": no such checkpoint directory");
    json index = json::parse(readTextFile(indexPath), nullptr, /*allow_exceptions=*/false);
    if (!index.is_object() || index.value("format", "") != kFormat)
      throw DataError(indexPath + ": not a dtlc checkpoint index");
    try {
      if (index.at("version").get<int>() != kVersion)
        throw DataError(indexPath + ": version " + index.at("version").dump() +
                        ", this program reads version " + std::to_string(kVersion));
      const json &saved = index.at("tensors");
      // Another model: say the first tensor that differs.
      if (index.at("signature").get<std::string>() != identity.signature) {
        std::string why = "its tensors differ";
        for (auto &[name, unused] : saved.items())
          if (std::none_of(tensors.begin(), tensors.end(),
                           [&](const StateTensor &t) { return t.spec->name == name; }))
            why = "it has '" + name + "', which this model lacks";
        for (const StateTensor &t : tensors) {
          std::string here = shapeText(t.spec->dtype, t.spec->globalShape);
          if (!saved.contains(t.spec->name)) {
            why = "it has no '" + t.spec->name + "'";
            break;
          }
          const json &s = saved.at(t.spec->name);
          std::vector<int64_t> shape = s.at("shape").get<std::vector<int64_t>>();
          std::string dtype = s.at("dtype");
          DType there = dtype == "F64" ? DType::F64 : dtype == "I32" ? DType::I32 : DType::F32;
          if (shapeText(there, shape) != here) {
            why = "'" + t.spec->name + "' is " + shapeText(there, shape) + " there and " + here +
                  " here";
            break;
          }
        }
        throw DataError(dir + ": a checkpoint of another model (" +
                        index.value("model", std::string("?")) + " from " +
                        index.value("source", std::string("?")) + "): " + why);
      }
      std::map<std::string, SafetensorsHeader> headers;
      for (const StateTensor &t : tensors) {
        const TensorSpec &spec = *t.spec;
        const json &entry = saved.at(spec.name);
        if (entry.at("dtype") != dtypeName(spec.dtype))
          throw DataError(indexPath + ": tensor '" + spec.name + "' is " +
                          entry.at("dtype").get<std::string>() + ", this program's is " +
                          dtypeName(spec.dtype));
        std::vector<Part> parts = localParts(spec, ctx);
        int64_t covered = 0;
        size_t element = sizeOf(spec.dtype);
        Box block{std::vector<int64_t>(spec.localShape.size(), 0), spec.localShape};
        // Each part is read into a buffer of its own box, then put in its
        // place in the block (one part: straight into the block).
        std::vector<std::vector<unsigned char>> copies(parts.size() > 1 ? parts.size() : 0);
        for (size_t k = 0; k < copies.size(); ++k)
          copies[k].resize(size_t(numElements(parts[k].declared.shape)) * element);
        auto overlaps = [](const Box &x, const Box &y) {
          for (size_t d = 0; d < x.shape.size(); ++d)
            if (std::max(x.offset[d], y.offset[d]) >=
                std::min(x.offset[d] + x.shape[d], y.offset[d] + y.shape[d]))
              return false;
          return true;
        };
        for (const json &slice : entry.at("slices")) {
          Box box{slice.at("offset").get<std::vector<int64_t>>(),
                  slice.at("shape").get<std::vector<int64_t>>()};
          if (box.offset.size() != block.shape.size() || box.shape.size() != block.shape.size())
            throw DataError(indexPath + ": tensor '" + spec.name + "': a slice of another rank");
          // Overlap test before any reading; each slice is read once.
          if (std::none_of(parts.begin(), parts.end(),
                           [&](const Part &part) { return overlaps(box, part.declared); }))
            continue;
          std::string file = dir + "/" + slice.at("file").get<std::string>();
          auto found = headers.find(file);
          if (found == headers.end())
            found = headers.emplace(file, readSafetensorsHeader(file)).first;
          const SafetensorsHeader &header = found->second;
          std::string name = slice.value("entry", spec.name);
          auto it = std::find_if(header.tensors.begin(), header.tensors.end(),
                                 [&](const SafetensorsEntry &e) { return e.name == name; });
          if (it == header.tensors.end())
            throw DataError(file + ": has no tensor '" + name + "' (the index says it has)");
          if (it->dtype != spec.dtype || it->shape != box.shape)
            throw DataError(file + ": tensor '" + spec.name + "' is " +
                            shapeText(it->dtype, it->shape) + ", the index says " +
                            shapeText(spec.dtype, box.shape));
          std::vector<unsigned char> bytes(it->end - it->begin);
          std::ifstream in(file, std::ios::binary);
          in.seekg(std::streamoff(header.dataOffset + it->begin));
          if (!in.read(reinterpret_cast<char *>(bytes.data()), std::streamsize(bytes.size())))
            throw DataError(file + ": tensor '" + spec.name + "': cannot read its bytes");
          if (crc32Of(bytes.data(), bytes.size()) != slice.at("crc32").get<uint32_t>())
            throw DataError(file + ": tensor '" + spec.name +
                            "': checksum mismatch (the file is damaged)");
          for (size_t k = 0; k < parts.size(); ++k)
            covered += copyOverlap(
                box, bytes.data(), parts[k].declared,
                copies.empty() ? static_cast<unsigned char *>(t.local) : copies[k].data(), element);
        }
        for (size_t k = 0; k < copies.size(); ++k)
          copyOverlap(Box{parts[k].localOffset, parts[k].declared.shape}, copies[k].data(), block,
                      static_cast<unsigned char *>(t.local), element);
        if (covered != spec.localSize())
          throw DataError(indexPath + ": the slices of '" + spec.name + "' cover " +
                          std::to_string(covered) + " of the " + std::to_string(spec.localSize()) +
                          " elements this rank needs");
      }
      position = positionFrom(index.at("state"));
    } catch (const json::exception &e) {
      throw DataError(indexPath + ": malformed (" + e.what() + ")");
    }
  } catch (const DataError &e) {
    error = e.what();
  }
  throwIfAnyRankFailed(error, rank);
  return position;
}

} // namespace dtlrt
