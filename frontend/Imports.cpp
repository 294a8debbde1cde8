//===- Imports.cpp - `import "file.dtl";` ---------------------------------===//
//
// An import reads another .dtl file (relative to the importing one) and adds
// its declarations to the program, as if written there; each file is read
// once, however often it is imported, and a cycle is an error.
//
//===----------------------------------------------------------------------===//

#include "frontend/Parser.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <set>

using namespace dtl;
using namespace dtl::ast;

namespace {

/// The largest file an import reads (docs/language.md, "Limits").
constexpr uint64_t kMaxImportBytes = 16ull << 20;

template <typename T> void append(std::vector<T> &to, std::vector<T> &from) {
  for (T &item : from)
    to.push_back(std::move(item));
}

struct Importer {
  Program &program;
  const SyntaxErrorFn &onError;
  std::set<std::string> done;
  std::vector<std::string> inProgress;

  static std::string canonical(const std::string &path) {
    llvm::SmallString<256> real;
    if (llvm::sys::fs::real_path(path, real))
      return path;
    return std::string(real);
  }

  /// Merges the imports of `from`, a file at `fromPath`.
  bool resolve(std::vector<Import> imports, const std::string &fromPath) {
    bool ok = true;
    for (const Import &i : imports) {
      llvm::SmallString<256> path(i.path);
      if (!llvm::sys::path::is_absolute(path)) {
        path = llvm::sys::path::parent_path(fromPath);
        llvm::sys::path::append(path, i.path);
      }
      std::string key = canonical(std::string(path));
      if (std::find(inProgress.begin(), inProgress.end(), key) != inProgress.end()) {
        onError(i.pos, "import cycle: '" + i.path + "' imports this file back");
        ok = false;
        continue;
      }
      if (!done.insert(key).second)
        continue;
      // Only a regular file of sensible size: /dev/zero, a FIFO or a
      // directory would be read forever, block, or fail obscurely.
      llvm::sys::fs::file_status status;
      if (!llvm::sys::fs::status(path, status) &&
          status.type() != llvm::sys::fs::file_type::regular_file) {
        onError(i.pos, "cannot import '" + std::string(path) + "': not a regular file");
        ok = false;
        continue;
      }
      if (!llvm::sys::fs::status(path, status) && status.getSize() > kMaxImportBytes) {
        onError(i.pos, "cannot import '" + std::string(path) +
                           "': " + std::to_string(status.getSize()) + " bytes, over the " +
                           std::to_string(kMaxImportBytes >> 20) + " MiB limit of a .dtl file");
        ok = false;
        continue;
      }
      auto buffer = llvm::MemoryBuffer::getFile(path);
      if (!buffer) {
        onError(i.pos, "cannot read imported file '" + std::string(path) +
                           "': " + buffer.getError().message());
        ok = false;
        continue;
      }
      program.files.push_back(std::make_unique<std::string>(path.str()));
      const std::string *file = program.files.back().get();
      std::unique_ptr<Program> imported = parseProgram((*buffer)->getBuffer().str(), onError, file);
      if (!imported) {
        ok = false;
        continue;
      }
      inProgress.push_back(key);
      ok &= resolve(std::move(imported->imports), *file);
      inProgress.pop_back();
      append(program.meshes, imported->meshes);
      append(program.models, imported->models);
      append(program.blocks, imported->blocks);
      append(program.trains, imported->trains);
      append(program.files, imported->files);
    }
    return ok;
  }
};

} // namespace

bool dtl::resolveImports(Program &program, const std::string &mainFile,
                         const SyntaxErrorFn &onError) {
  Importer importer{
      program, onError, {Importer::canonical(mainFile)}, {Importer::canonical(mainFile)}};
  return importer.resolve(program.imports, mainFile);
}
