//===- DtlAttrs.cpp - the dtl attributes: syntax and verifiers ------------===//

#include "dialects/dtl/Contract.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace dtl;

#include "dialects/dtl/DtlEnums.cpp.inc"

/// A place: its kind, then its index unless that is 0 (`#dtl.place<view>`,
/// `#dtl.place<arena 4096>`). Custom, since an optional group cannot start
/// with an integer.
static ParseResult parsePlace(AsmParser &parser, PlaceKind &kind, int64_t &index) {
  StringRef keyword;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<PlaceKind> parsed = symbolizePlaceKind(keyword);
  if (!parsed)
    return parser.emitError(loc, "expected arena, result, slice or view");
  kind = *parsed;
  index = 0;
  OptionalParseResult number = parser.parseOptionalInteger(index);
  return number.has_value() ? *number : success();
}

static void printPlace(AsmPrinter &printer, PlaceKind kind, int64_t index) {
  printer << stringifyPlaceKind(kind);
  if (index != 0)
    printer << ' ' << index;
}

#define GET_ATTRDEF_CLASSES
#include "dialects/dtl/DtlAttrs.cpp.inc"

void DtlDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/dtl/DtlAttrs.cpp.inc"
      >();
}

FailureOr<F64> dtl::parseF64(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return F64(value);
}

void dtl::printF64(AsmPrinter &printer, double value) {
  // The shortest form that reads back to the same double, always with a
  // point: MLIR's lexer reads "1e-05" as an integer.
  char buffer[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::strtod(buffer, nullptr) == value)
      break;
  }
  std::string s = buffer;
  if (std::isfinite(value) && s.find('.') == std::string::npos)
    s.insert(std::min(s.find('e'), s.size()), ".0");
  printer << s;
}

//===----------------------------------------------------------------------===//
// ShardingAttr: #dtl.sharding<@grid, [[0], []], partial [1]>
//===----------------------------------------------------------------------===//

static ParseResult parseAxisList(AsmParser &parser, SmallVectorImpl<int16_t> &axes) {
  return parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&]() {
    int16_t axis;
    if (parser.parseInteger(axis))
      return failure();
    axes.push_back(axis);
    return success();
  });
}

static void printAxisList(AsmPrinter &printer, ArrayRef<int16_t> axes) {
  printer << '[';
  llvm::interleaveComma(axes, printer);
  printer << ']';
}

Attribute ShardingAttr::parse(AsmParser &parser, Type) {
  FlatSymbolRefAttr grid;
  SmallVector<DenseI16ArrayAttr> dims;
  SmallVector<int16_t> partial;
  if (parser.parseLess() || parser.parseAttribute(grid) || parser.parseComma())
    return {};
  if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&]() {
        SmallVector<int16_t> axes;
        if (parseAxisList(parser, axes))
          return failure();
        dims.push_back(DenseI16ArrayAttr::get(parser.getContext(), axes));
        return success();
      }))
    return {};
  if (succeeded(parser.parseOptionalComma()) &&
      (parser.parseKeyword("partial") || parseAxisList(parser, partial)))
    return {};
  if (parser.parseGreater())
    return {};
  return ShardingAttr::get(parser.getContext(), grid, dims,
                           DenseI16ArrayAttr::get(parser.getContext(), partial));
}

void ShardingAttr::print(AsmPrinter &printer) const {
  printer << '<' << getGrid() << ", [";
  llvm::interleaveComma(getDims(), printer,
                        [&](DenseI16ArrayAttr axes) { printAxisList(printer, axes.asArrayRef()); });
  printer << ']';
  if (!getPartial().empty()) {
    printer << ", partial ";
    printAxisList(printer, getPartial().asArrayRef());
  }
  printer << '>';
}

bool ShardingAttr::isFullyReplicated() const {
  return getPartial().empty() &&
         llvm::all_of(getDims(), [](DenseI16ArrayAttr a) { return a.empty(); });
}

ShardingAttr ShardingAttr::get(MLIRContext *ctx, StringRef grid,
                               ArrayRef<SmallVector<int16_t>> dims, ArrayRef<int16_t> partial) {
  SmallVector<DenseI16ArrayAttr> dimAttrs;
  for (const auto &axes : dims)
    dimAttrs.push_back(DenseI16ArrayAttr::get(ctx, axes));
  return ShardingAttr::get(ctx, FlatSymbolRefAttr::get(ctx, grid), dimAttrs,
                           DenseI16ArrayAttr::get(ctx, partial));
}

//===----------------------------------------------------------------------===//
// MeshAttr: #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>
//===----------------------------------------------------------------------===//

Attribute MeshAttr::parse(AsmParser &parser, Type) {
  FlatSymbolRefAttr grid;
  SmallVector<StringAttr> names;
  SmallVector<int64_t> sizes;
  if (parser.parseLess() || parser.parseAttribute(grid) || parser.parseComma() ||
      parser.parseCommaSeparatedList(AsmParser::Delimiter::Square,
                                     [&]() {
                                       std::string name;
                                       int64_t size;
                                       if (parser.parseString(&name) || parser.parseEqual() ||
                                           parser.parseInteger(size))
                                         return failure();
                                       names.push_back(StringAttr::get(parser.getContext(), name));
                                       sizes.push_back(size);
                                       return success();
                                     }) ||
      parser.parseGreater())
    return {};
  return MeshAttr::getChecked([&] { return parser.emitError(parser.getNameLoc()); },
                              parser.getContext(), grid, names, sizes);
}

void MeshAttr::print(AsmPrinter &printer) const {
  printer << '<' << getGrid() << ", [";
  llvm::interleaveComma(llvm::zip(getNames(), getSizes()), printer, [&](auto axis) {
    printer << std::get<0>(axis) << " = " << std::get<1>(axis);
  });
  printer << "]>";
}

LogicalResult MeshAttr::verify(function_ref<InFlightDiagnostic()> emitError, FlatSymbolRefAttr grid,
                               ArrayRef<StringAttr> names, ArrayRef<int64_t> sizes) {
  if (names.size() != sizes.size() || names.empty())
    return emitError() << "a mesh needs one size per axis name, and at least one axis";
  for (auto [i, size] : llvm::enumerate(sizes))
    if (size < 1)
      return emitError() << "mesh axis '" << names[i].getValue() << "' must have a positive size";
  for (size_t i = 0; i < names.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (names[i] == names[j])
        return emitError() << "mesh axis '" << names[i].getValue() << "' is named twice";
  return success();
}

int64_t MeshAttr::size() const {
  int64_t n = 1;
  for (int64_t s : getSizes())
    n *= s;
  return n;
}

int64_t MeshAttr::span(ArrayRef<int16_t> axes) const {
  int64_t n = 1;
  for (int16_t a : axes)
    n *= getSizes()[a];
  return n;
}

int64_t MeshAttr::axisIndex(StringRef name) const {
  for (auto [i, n] : llvm::enumerate(getNames()))
    if (n.getValue() == name)
      return i;
  return -1;
}

//===----------------------------------------------------------------------===//
// InitAttr: #dtl.init<zeros>, #dtl.init<normal(0.0, 0.02)>
//===----------------------------------------------------------------------===//

/// normal and uniform take two numbers; zeros and ones none.
static bool takesNumbers(InitKind kind) {
  return kind == InitKind::normal || kind == InitKind::uniform;
}

Attribute InitAttr::parse(AsmParser &parser, Type) {
  std::string keyword;
  double a = 0, b = 0;
  if (parser.parseLess() || parser.parseKeywordOrString(&keyword))
    return {};
  std::optional<InitKind> kind = symbolizeInitKind(keyword);
  if (!kind) {
    parser.emitError(parser.getCurrentLocation(), "unknown initializer '") << keyword << "'";
    return {};
  }
  if (takesNumbers(*kind) && (parser.parseLParen() || parser.parseFloat(a) || parser.parseComma() ||
                              parser.parseFloat(b) || parser.parseRParen()))
    return {};
  if (parser.parseGreater())
    return {};
  return InitAttr::getChecked([&] { return parser.emitError(parser.getNameLoc()); },
                              parser.getContext(), *kind, a, b);
}

void InitAttr::print(AsmPrinter &printer) const {
  printer << '<' << stringifyInitKind(getKind());
  if (takesNumbers(getKind())) {
    printer << '(';
    printF64(printer, getA());
    printer << ", ";
    printF64(printer, getB());
    printer << ')';
  }
  printer << '>';
}

LogicalResult InitAttr::verify(function_ref<InFlightDiagnostic()> emitError, InitKind kind, F64 a,
                               F64 b) {
  if (!std::isfinite(a.value) || !std::isfinite(b.value))
    return emitError() << "an initializer's numbers must be finite";
  if (kind == InitKind::normal && b < 0)
    return emitError() << "normal(mean, std) needs std >= 0";
  if (kind == InitKind::uniform && b < a)
    return emitError() << "uniform(low, high) needs low <= high";
  if (!takesNumbers(kind) && (a != 0 || b != 0))
    return emitError() << stringifyInitKind(kind) << " takes no numbers";
  return success();
}

//===----------------------------------------------------------------------===//
// OptimizerAttr, DataAttr, TrainAttr
//===----------------------------------------------------------------------===//

LogicalResult OptimizerAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                    OptimizerKind kind, F64 lr, F64 beta1, F64 beta2, F64 eps,
                                    F64 weightDecay, F64 momentum) {
  for (double v :
       {lr.value, beta1.value, beta2.value, eps.value, weightDecay.value, momentum.value})
    if (!std::isfinite(v) || v < 0)
      return emitError() << "optimizer hyper-parameters must be finite and non-negative";
  if (beta1 >= 1 || beta2 >= 1)
    return emitError() << "betas must lie in [0, 1)";
  if (momentum >= 1)
    return emitError() << "momentum must lie in [0, 1)";
  if (kind == OptimizerKind::adamw && eps == 0)
    return emitError() << "adamw needs eps > 0";
  return success();
}

LogicalResult DataAttr::verify(function_ref<InFlightDiagnostic()> emitError, DataSourceKind source,
                               ArrayAttr inputs, ArrayAttr files, int64_t classes, int64_t size) {
  if (!llvm::all_of(inputs, llvm::IsaPred<StringAttr>) ||
      !llvm::all_of(files, llvm::IsaPred<StringAttr>))
    return emitError() << "a data source's inputs and files are strings";
  if (inputs.empty())
    return emitError() << "a data source feeds at least one input";
  switch (source) {
  case DataSourceKind::idx:
    if (files.size() != inputs.size())
      return emitError() << "idx takes one file per input";
    break;
  case DataSourceKind::tokens:
    if (files.size() != 1 || inputs.size() != 2)
      return emitError() << "tokens takes one file and feeds two inputs (ids, targets)";
    break;
  case DataSourceKind::synthetic:
    if (!files.empty() || classes < 1 || size < 1)
      return emitError() << "synthetic takes no files, and positive classes and size";
    break;
  }
  return success();
}

LogicalResult TrainAttr::verify(function_ref<InFlightDiagnostic()> emitError, DataAttr data,
                                DataAttr eval, int64_t steps, int64_t logEvery, int64_t evalEvery,
                                int64_t evalBatches, int64_t seed, LrSchedule schedule,
                                int64_t warmup, F64 minLr, int64_t zero, int64_t accumulate,
                                PipelineSchedule pipeline, int64_t memoryLimit, Precision precision,
                                Precision reducePrecision, F64 clipGradNorm,
                                int64_t maxSkippedSteps, int64_t checkpointEvery, int64_t keepLast,
                                StringRef checkpointDir) {
  if (steps < 1 || logEvery < 1)
    return emitError() << "steps and log_every must be at least 1";
  if (evalEvery < 0 || evalBatches < 0 || seed < 0 || warmup < 0)
    return emitError() << "eval_every, eval_batches, seed and warmup must not be negative";
  if (!std::isfinite(minLr.value) || minLr < 0)
    return emitError() << "min_lr must be finite and non-negative";
  if (zero < 0 || zero > 3)
    return emitError() << "zero is the ZeRO stage: 0, 1, 2 or 3";
  if (memoryLimit < 0)
    return emitError() << "memory_limit must not be negative (0: none)";
  if (accumulate < 1)
    return emitError() << "accumulate is the number of micro-batches per step (at least 1)";
  if (reducePrecision == Precision::f64 ||
      (reducePrecision == Precision::bf16 && precision != Precision::bf16))
    return emitError() << "reduce_precision = bf16 needs precision = bf16 (gradients are summed "
                          "in f32 otherwise)";
  if (!std::isfinite(clipGradNorm.value) || clipGradNorm < 0)
    return emitError() << "clip_grad_norm must be finite and non-negative (0: no clipping)";
  if (maxSkippedSteps < 1)
    return emitError() << "max_skipped_steps must be at least 1";
  if (checkpointEvery < 0 || keepLast < 0)
    return emitError() << "checkpoint_every and keep_last must not be negative";
  if (checkpointDir.empty())
    return emitError() << "checkpoint_dir must not be empty";
  return success();
}

//===----------------------------------------------------------------------===//
// Lookups (Contract.h)
//===----------------------------------------------------------------------===//

MeshAttr dtl::getMesh(ModuleOp module) { return module->getAttrOfType<MeshAttr>(attr::mesh); }

shard::GridOp dtl::getGrid(ModuleOp module) {
  MeshAttr mesh = getMesh(module);
  return mesh ? module.lookupSymbol<shard::GridOp>(mesh.getGrid().getValue()) : shard::GridOp();
}

std::optional<Role> dtl::argRole(func::FuncOp fn, unsigned index) {
  if (auto role = fn.getArgAttrOfType<RoleAttr>(index, attr::role))
    return role.getValue();
  return std::nullopt;
}

std::optional<Role> dtl::resultRole(func::FuncOp fn, unsigned index) {
  if (auto role = fn.getResultAttrOfType<RoleAttr>(index, attr::role))
    return role.getValue();
  return std::nullopt;
}

StringRef dtl::argName(func::FuncOp fn, unsigned index) {
  auto name = fn.getArgAttrOfType<StringAttr>(index, attr::name);
  return name ? name.getValue() : StringRef();
}

bool dtl::argDecays(func::FuncOp fn, unsigned index) {
  if (auto decay = fn.getArgAttrOfType<BoolAttr>(index, attr::decay))
    return decay.getValue();
  auto type = dyn_cast<RankedTensorType>(fn.getArgument(index).getType());
  return type && type.getRank() >= 2;
}

StringRef dtl::resultName(func::FuncOp fn, unsigned index) {
  auto name = fn.getResultAttrOfType<StringAttr>(index, attr::name);
  return name ? name.getValue() : StringRef();
}
