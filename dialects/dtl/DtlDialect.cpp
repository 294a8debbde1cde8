//===- DtlDialect.cpp - dialect registration and attributes ---------------===//

#include "dialects/dtl/DtlOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace dtl;

#include "dialects/dtl/DtlDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/dtl/DtlAttrs.cpp.inc"

void DtlDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/dtl/DtlOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/dtl/DtlAttrs.cpp.inc"
      >();
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
  llvm::interleaveComma(getDims(), printer, [&](DenseI16ArrayAttr axes) {
    printAxisList(printer, axes.asArrayRef());
  });
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
                               ArrayRef<SmallVector<int16_t>> dims,
                               ArrayRef<int16_t> partial) {
  SmallVector<DenseI16ArrayAttr> dimAttrs;
  for (const auto &axes : dims)
    dimAttrs.push_back(DenseI16ArrayAttr::get(ctx, axes));
  return ShardingAttr::get(ctx, FlatSymbolRefAttr::get(ctx, grid), dimAttrs,
                           DenseI16ArrayAttr::get(ctx, partial));
}
