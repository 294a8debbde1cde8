//===- StepPrinter.cpp - one step function, printed op by op --------------===//

#include "codegen/StepPrinter.h"
#include "codegen/Printer.h"
#include "dialects/dtl/Layout.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace dtl;

//===----------------------------------------------------------------------===//
// C++ spelling
//===----------------------------------------------------------------------===//

std::string cpp::quoted(StringRef s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c >= 0x7F) {
      // Octal escapes end after three digits, so a digit that follows stays a digit.
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\%03o", unsigned(c));
      out += buffer;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

std::string cpp::list(ArrayRef<int64_t> values) {
  return "{" +
         llvm::join(llvm::map_range(values, [](int64_t v) { return std::to_string(v); }), ", ") +
         "}";
}

std::string cpp::literal(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

std::string cpp::identifier(StringRef name) {
  std::string s;
  for (char c : name)
    s += llvm::isAlnum(c) ? c : '_';
  return s;
}

namespace {

int64_t elements(Value v) { return cast<RankedTensorType>(v.getType()).getNumElements(); }

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }

/// (product of the leading dims, last dim) of `v`'s local shape.
std::pair<int64_t, int64_t> rowsAndLast(Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t last = type.getShape().back();
  return {type.getNumElements() / last, last};
}

std::string str(int64_t v) { return std::to_string(v); }

/// The size of `v` in bytes, as a C++ expression.
std::string bytesOf(Value v) {
  return str(elements(v)) + " * sizeof(" + StepPrinter::elementType(v.getType()) + ")";
}

/// `dtlrt::Axes{0, 1}`.
std::string axesOf(ArrayRef<int16_t> axes) {
  return "dtlrt::Axes" + cpp::list(SmallVector<int64_t>(axes.begin(), axes.end()));
}

/// A `static const T name[] = {...};` declaration and the argument that
/// passes it (nullptr when empty: C++ has no empty arrays).
struct StaticArray {
  std::string declaration, argument;
};
StaticArray staticArray(StringRef type, StringRef name, ArrayRef<std::string> values) {
  if (values.empty())
    return {"", "nullptr"};
  return {"static const " + type.str() + " " + name.str() + "[] = {" + llvm::join(values, ", ") +
              "};",
          name.str()};
}
StaticArray staticArray(StringRef name, ArrayRef<int64_t> values) {
  SmallVector<std::string> items;
  for (int64_t v : values)
    items.push_back(str(v));
  return staticArray("int64_t", name, items);
}

/// Input strides, in result-dimension space, of a broadcast (0 where the
/// input repeats) or of a transpose (result dim i walks input dim perm[i]).
SmallVector<int64_t> gatherStrides(BroadcastOp b) {
  ArrayRef<int64_t> in = shapeOf(b.getInput()), out = shapeOf(b.getResult());
  SmallVector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (int64_t i = (int64_t)in.size() - 1; i >= 0; --i) {
    if (in[i] == out[b.getDims()[i]])
      strides[b.getDims()[i]] = stride;
    stride *= in[i];
  }
  return strides;
}

SmallVector<int64_t> gatherStrides(TransposeOp t) {
  ArrayRef<int64_t> in = shapeOf(t.getInput());
  SmallVector<int64_t> inStrides(in.size()), strides;
  for (int64_t d = (int64_t)in.size() - 1, stride = 1; d >= 0; stride *= in[d--])
    inStrides[d] = stride;
  for (int64_t p : t.getPermutation())
    strides.push_back(inStrides[p]);
  return strides;
}

/// One element of an elementwise op, from its operands' element names.
std::string scalar(Operation *op, ArrayRef<std::string> x, StringRef ns) {
  return llvm::TypeSwitch<Operation *, std::string>(op)
      .Case([&](ConstantOp c) {
        return "real(" + cpp::literal(c.getValue().convertToDouble()) + ")";
      })
      .Case([&](AddOp) { return x[0] + " + " + x[1]; })
      .Case([&](SubOp) { return x[0] + " - " + x[1]; })
      .Case([&](MulOp) { return x[0] + " * " + x[1]; })
      .Case([&](DivOp) { return x[0] + " / " + x[1]; })
      .Case([&](NegOp) { return "-" + x[0]; })
      .Case([&](ConvertOp) { return x[0]; }) // the store rounds
      .Case([&](LabelKeptOp) { return x[0] + " >= 0 ? real(1) : real(0)"; })
      .Case([&](ReluOp) { return x[0] + " > real(0) ? " + x[0] + " : real(0)"; })
      .Case([&](ReluGradOp) { return x[0] + " > real(0) ? " + x[1] + " : real(0)"; })
      .Case([&](ExpOp) { return "std::exp(" + x[0] + ")"; })
      .Case([&](LogOp) { return "std::log(" + x[0] + ")"; })
      .Case([&](TanhOp) { return "std::tanh(" + x[0] + ")"; })
      .Case([&](SqrtOp) { return "std::sqrt(" + x[0] + ")"; })
      .Case([&](GeluOp) { return ns.str() + "::gelu(" + x[0] + ")"; })
      .Case([&](GeluGradOp) { return ns.str() + "::geluGrad(" + x[0] + ", " + x[1] + ")"; })
      .Case([&](GradScaleOp g) {
        return ns.str() + "::gradScale(" + x[0] + ", " + x[1] + ", real(" +
               cpp::literal(g.getMaxNorm().convertToDouble()) + "))";
      })
      .Default([](Operation *) { return std::string(); });
}

} // namespace

std::string dtl::sourcePosition(Location loc) {
  if (auto file = dyn_cast<FileLineColLoc>(loc))
    return file.getFilename().str() + ":" + str(file.getLine()) + ":" + str(file.getColumn());
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (std::string s = sourcePosition(inner); !s.empty())
        return s;
  if (auto named = dyn_cast<NameLoc>(loc))
    return sourcePosition(named.getChildLoc());
  return "";
}

//===----------------------------------------------------------------------===//
// StepPrinter
//===----------------------------------------------------------------------===//

StepPrinter::StepPrinter(PrinterTarget &target, ModuleOp module, raw_indented_ostream &os,
                         raw_ostream &kernels)
    : target_(target), mesh_(getMesh(module)), os_(os), kernels_(kernels) {
  auto train = module->getAttrOfType<TrainAttr>(attr::train);
  seed_ = train ? train.getSeed() : 0;
}

std::string StepPrinter::elementType(Type type) {
  Type element = cast<RankedTensorType>(type).getElementType();
  return element.isInteger(32) ? "int32_t" : element.isBF16() ? "dtlrt::bf16" : "real";
}

std::string StepPrinter::computeType(Type type) {
  return cast<RankedTensorType>(type).getElementType().isInteger(32) ? "int32_t" : "real";
}

const std::string &StepPrinter::name(Value v) const { return names_.find(v)->second; }

void StepPrinter::alias(Value v, Value sameAs) {
  // Copied before inserting: the insertion may grow the map and move the
  // string `name` refers to.
  std::string same = name(sameAs);
  names_[v] = std::move(same);
}

std::string StepPrinter::define(Value v) {
  auto result = cast<OpResult>(v);
  auto places = result.getOwner()->getAttrOfType<ArrayAttr>(attr::place);
  auto place = cast<PlaceAttr>(places[result.getResultNumber()]);
  std::string name = "t" + str(nextName_++), type = elementType(v.getType());
  os_ << type << " *const " << name << " = ";
  switch (place.getKind()) {
  case PlaceKind::arena:
    os_ << "reinterpret_cast<" << type << " *>(arena + " << place.getIndex() << ");\n";
    break;
  case PlaceKind::result:
    os_ << "static_cast<" << type << " *>(results[" << place.getIndex() << "]);\n";
    break;
  case PlaceKind::slice: {
    auto repeat = cast<RepeatOp>(v.getParentBlock()->getParentOp());
    os_ << this->name(repeat.getStackedResults()[place.getIndex()]) << " + "
        << stackedSlots_.lookup(repeat) << " * " << elements(v) << ";\n";
    break;
  }
  case PlaceKind::view:
    llvm_unreachable("views are named by their own printers");
  }
  names_[v] = name;
  return name;
}

void StepPrinter::printLocation(Operation *op) {
  // A line comment ends at a newline and continues after a backslash.
  std::string where;
  for (unsigned char c : sourcePosition(op->getLoc()))
    where += c < 0x20 || c == 0x7F || c == '\\' ? '?' : char(c);
  if (!where.empty())
    os_ << "// " << where << "\n";
}

void StepPrinter::call(StringRef fn, ArrayRef<std::string> args) {
  os_ << target_.ns() << "::" << fn << "(" << llvm::join(args, ", ") << ");\n";
}

LogicalResult StepPrinter::printFunction(func::FuncOp fn, StringRef cppName) {
  functionName_ = cppName.str();
  auto arena = fn->getAttrOfType<IntegerAttr>(attr::arenaBytes);
  if (!arena)
    return fn.emitError("the printers print the execution stage: run dtl-plan-buffers first");
  os_ << "void " << cppName << "(dtlrt::Context &ctx, void *const *args, void *const *results) {\n";
  os_.indent();
  os_ << "(void)ctx;\nstatic char *const arena = " << target_.ns() << "::arena(" << arena.getInt()
      << ");\n";
  for (BlockArgument arg : fn.getArguments()) {
    std::string name = "a" + str(arg.getArgNumber());
    if (StringRef n = argName(fn, arg.getArgNumber()); !n.empty())
      name += "_" + cpp::identifier(n);
    std::string type = elementType(arg.getType());
    os_ << "const " << type << " *const " << name << " = static_cast<const " << type << " *>(args["
        << arg.getArgNumber() << "]);\n";
    names_[arg] = name;
  }
  if (failed(printBlock(fn.getBody().front())))
    return failure();
  target_.printFunctionEnd(os_);
  os_.unindent();
  os_ << "}\n\n";
  return success();
}

LogicalResult StepPrinter::printBlock(Block &block) {
  for (Operation &op : block)
    if (failed(printOperation(&op)))
      return failure();
  return success();
}

LogicalResult StepPrinter::printOperation(Operation *op) {
  if (op->getNumResults() > 0 && !isa<YieldOp, scf::YieldOp>(op) && !op->hasAttr(attr::place))
    return op->emitError("has no place: run dtl-plan-buffers first");
  // The .dtl line above whatever computes; views, waits and the return are
  // not calls of their own.
  if (!isa<ReshapeOp, StackedSliceOp, CollectiveWaitOp, YieldOp, func::ReturnOp,
           shard::ProcessMultiIndexOp, scf::YieldOp>(op))
    printLocation(op);
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case<MatmulOp, MatmulBiasOp, BroadcastOp, TransposeOp, ReduceSumOp, ReshapeOp, SoftmaxOp,
            SplitOp, ConcatOp, SoftmaxGradOp, LayerNormOp, LayerNormGradInputOp,
            LayerNormGradParamsOp, EmbeddingOp, EmbeddingGradOp, CausalAttentionOp,
            CausalAttentionGradOp, CrossEntropyOp, CrossEntropyGradOp, CrossEntropyPartialOp,
            CrossEntropyCombineOp, CorrectOp, ArgmaxPartialOp, CorrectCombineOp, DropoutOp,
            AdamwUpdateOp, SgdUpdateOp, RepeatOp, CollectiveWaitOp, shard::AllReduceOp,
            shard::ReduceScatterOp, shard::AllGatherOp, shard::AllToAllOp, shard::AllSliceOp,
            func::ReturnOp, StackedSliceOp, shard::ProcessMultiIndexOp, scf::IndexSwitchOp,
            shard::SendOp, shard::RecvOp>([&](auto concrete) { return print(concrete); })
      .Case([&](FusedOp fused) { return target_.printFused(*this, fused); })
      .Case<YieldOp, scf::YieldOp>([&](auto) { return success(); }) // printed by their owner
      .Default([&](Operation *other) {
        return other->emitError("the printer has no rule for this op (is the module at the "
                                "execution stage?)");
      });
}

std::string StepPrinter::printElement(FusedOp fused, ArrayRef<std::string> argNames,
                                      raw_indented_ostream &out) {
  DenseMap<Value, std::string> element;
  for (auto [arg, name] : llvm::zip(fused.getBodyBlock().getArguments(), argNames))
    element[arg] = name;
  int next = 0;
  for (Operation &op : fused.getBodyBlock().without_terminator()) {
    SmallVector<std::string> operands;
    for (Value v : op.getOperands())
      operands.push_back(element[v]);
    std::string name = "v" + str(next++);
    out << "const " << computeType(op.getResult(0).getType()) << " " << name << " = "
        << scalar(&op, operands, target_.ns()) << ";\n";
    element[op.getResult(0)] = name;
  }
  return element[cast<YieldOp>(fused.getBodyBlock().getTerminator()).getValues()[0]];
}

//===----------------------------------------------------------------------===//
// Linear algebra, layout
//===----------------------------------------------------------------------===//

/// ns::matmul(ta, tb, m, n, k, a, b, bias, c): an lhs [M..., K] is a matrix
/// of prod(M...) rows.
static SmallVector<std::string> gemmArgs(Value lhs, Value result, bool ta, bool tb) {
  auto [rows, n] = rowsAndLast(result);
  int64_t k = ta ? shapeOf(lhs)[0] : shapeOf(lhs).back();
  return {ta ? "true" : "false", tb ? "true" : "false", str(rows), str(n), str(k)};
}

LogicalResult StepPrinter::print(MatmulOp op) {
  SmallVector<std::string> args =
      gemmArgs(op.getLhs(), op.getResult(), op.getTransposeLhs(), op.getTransposeRhs());
  args.append({name(op.getLhs()), name(op.getRhs()),
               "static_cast<const " + elementType(op.getLhs().getType()) + " *>(nullptr)"});
  args.push_back(define(op.getResult()));
  call("matmul", args);
  return success();
}

LogicalResult StepPrinter::print(MatmulBiasOp op) {
  SmallVector<std::string> args =
      gemmArgs(op.getLhs(), op.getResult(), op.getTransposeLhs(), op.getTransposeRhs());
  args.append({name(op.getLhs()), name(op.getRhs()), name(op.getBias())});
  args.push_back(define(op.getResult()));
  call("matmul", args);
  return success();
}

LogicalResult StepPrinter::gather(Operation *op, ArrayRef<int64_t> strides) {
  Value result = op->getResult(0);
  std::string out = define(result);
  StaticArray shape = staticArray("shape", shapeOf(result));
  StaticArray stride = staticArray("strides", strides);
  os_ << "{\n";
  os_.indent();
  if (!shape.declaration.empty())
    os_ << shape.declaration << "\n" << stride.declaration << "\n";
  call("broadcast",
       {name(op->getOperand(0)), out, shape.argument, stride.argument, str(strides.size())});
  os_.unindent();
  os_ << "}\n";
  return success();
}

LogicalResult StepPrinter::print(BroadcastOp op) { return gather(op, gatherStrides(op)); }
LogicalResult StepPrinter::print(TransposeOp op) { return gather(op, gatherStrides(op)); }

// The whole is [outer, blocks, block run x inner] around `dim`; piece i is
// [outer, blocks, its run x inner] (contiguous rows of the copy) at its
// offset within each block.
void StepPrinter::copyPieces(Value whole, ValueRange pieces, int64_t dim, int64_t interleave,
                             bool toPieces) {
  ArrayRef<int64_t> shape = shapeOf(whole);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d)
    outer *= shape[d];
  for (int64_t d = dim + 1; d < (int64_t)shape.size(); ++d)
    inner *= shape[d];
  int64_t blockRun = shape[dim] / interleave, offset = 0;
  SmallVector<int64_t> strides{shape[dim] * inner, blockRun * inner, 1};
  std::string wholeName = toPieces ? name(whole) : define(whole);
  for (auto [i, piece] : llvm::enumerate(pieces)) {
    int64_t run = shapeOf(piece)[dim] / interleave;
    std::string pieceName = toPieces ? define(piece) : name(piece);
    std::string at = wholeName + " + " + str(offset * inner);
    StaticArray pieceShape = staticArray("shape", {outer, interleave, run * inner});
    StaticArray wholeStrides = staticArray("strides", strides);
    os_ << "{\n";
    os_.indent();
    os_ << pieceShape.declaration << "\n" << wholeStrides.declaration << "\n";
    if (toPieces)
      call("broadcast", {at, pieceName, pieceShape.argument, wholeStrides.argument, "3"});
    else
      call("place", {pieceName, at, pieceShape.argument, wholeStrides.argument, "3"});
    os_.unindent();
    os_ << "}\n";
    offset += run;
  }
}

LogicalResult StepPrinter::print(SplitOp op) {
  copyPieces(op.getInput(), op.getResults(), op.getDim(), op.getInterleave(), true);
  return success();
}

LogicalResult StepPrinter::print(ConcatOp op) {
  copyPieces(op.getResult(), op.getInputs(), op.getDim(), op.getInterleave(), false);
  return success();
}

LogicalResult StepPrinter::print(ReduceSumOp op) {
  ArrayRef<int64_t> in = shapeOf(op.getInput());
  SmallVector<std::string> reduced(in.size(), "false");
  for (int64_t d : op.getDims())
    reduced[d] = "true";
  std::string out = define(op.getResult());
  StaticArray shape = staticArray("shape", in);
  StaticArray mask = staticArray("bool", "reduced", reduced);
  os_ << "{\n";
  os_.indent();
  if (!shape.declaration.empty())
    os_ << shape.declaration << "\n" << mask.declaration << "\n";
  call("reduceSum", {name(op.getInput()), out, shape.argument, mask.argument, str(in.size())});
  os_.unindent();
  os_ << "}\n";
  return success();
}

// A view: the same bytes.
LogicalResult StepPrinter::print(ReshapeOp op) {
  std::string n = "t" + str(nextName_++), type = elementType(op.getType());
  os_ << "const " << type << " *const " << n << " = " << name(op.getInput()) << ";\n";
  names_[op.getResult()] = n;
  return success();
}

// A view: the slice's elements where they are.
LogicalResult StepPrinter::print(StackedSliceOp op) {
  std::string n = "t" + str(nextName_++), type = elementType(op.getType());
  os_ << "const " << type << " *const " << n << " = " << name(op.getInput()) << " + "
      << op.getIndex() * elements(op.getResult()) << ";\n";
  names_[op.getResult()] = n;
  return success();
}

//===----------------------------------------------------------------------===//
// Pipeline stages
//===----------------------------------------------------------------------===//

LogicalResult StepPrinter::print(shard::ProcessMultiIndexOp op) {
  for (auto [result, axis] : llvm::zip(op.getResults(), op.getAxes())) {
    std::string n = "i" + str(nextName_++);
    os_ << "const int " << n << " = ctx.indexAlong(" << axesOf({axis}) << ");\n";
    names_[result] = n;
  }
  return success();
}

// Each case in a scope of its own; what it yields is copied into the
// switch's results (placed outside every case).
LogicalResult StepPrinter::print(scf::IndexSwitchOp op) {
  for (Value r : op.getResults())
    define(r);
  auto printCase = [&](Block &block) -> LogicalResult {
    os_.indent();
    if (failed(printBlock(block)))
      return failure();
    for (auto [value, result] : llvm::zip(block.getTerminator()->getOperands(), op.getResults()))
      call("copy", {name(value), name(result), bytesOf(value)});
    os_ << "break;\n";
    os_.unindent();
    os_ << "}\n";
    return success();
  };
  os_ << "ctx.beginStages();\nswitch (" << name(op.getArg()) << ") {\n";
  for (auto [value, region] : llvm::zip(op.getCases(), op.getCaseRegions())) {
    os_ << "case " << value << ": {\n";
    if (failed(printCase(region.front())))
      return failure();
  }
  os_ << "default: {\n";
  if (failed(printCase(op.getDefaultRegion().front())))
    return failure();
  os_ << "}\nctx.endStages();\n";
  return success();
}

LogicalResult StepPrinter::pointToPoint(StringRef kind, Operation *op, StringRef data,
                                        ArrayRef<int16_t> axes,
                                        std::optional<ArrayRef<int64_t>> peer) {
  auto slot = op->getAttrOfType<IntegerAttr>(attr::slot);
  if (!slot)
    return op->emitError("has no `dtl.slot`: run dtl-schedule-collectives first");
  if (!peer || peer->size() != 1)
    return op->emitError("the printers need a static peer along one grid axis");
  Value v = op->getResult(0);
  os_ << target_.ns() << "::" << kind << "<" << elementType(v.getType()) << ">(ctx, " << data
      << ", " << elements(v) << ", " << (*peer)[0] << ", " << axesOf(axes) << ", " << slot.getInt()
      << ", " << describe(kind, axes, v) << ");\n";
  return success();
}

LogicalResult StepPrinter::print(shard::SendOp op) {
  alias(op.getResult(), op.getInput());
  return pointToPoint("send", op, name(op.getInput()), op.getGridAxes(), op.getDestination());
}

LogicalResult StepPrinter::print(shard::RecvOp op) {
  std::string out = define(op.getResult());
  return pointToPoint("recv", op, out, op.getGridAxes(), op.getSource());
}

//===----------------------------------------------------------------------===//
// Row kernels, embeddings, attention, losses
//===----------------------------------------------------------------------===//

LogicalResult StepPrinter::print(SoftmaxOp op) {
  auto [rows, n] = rowsAndLast(op.getInput());
  std::string out = define(op.getResult());
  call("softmax", {name(op.getInput()), out, str(rows), str(n)});
  return success();
}

LogicalResult StepPrinter::print(SoftmaxGradOp op) {
  auto [rows, n] = rowsAndLast(op.getOutput());
  std::string out = define(op.getResult());
  call("softmaxGrad", {name(op.getOutput()), name(op.getGrad()), out, str(rows), str(n)});
  return success();
}

LogicalResult StepPrinter::print(LayerNormOp op) {
  auto [rows, n] = rowsAndLast(op.getInput());
  std::string out = define(op.getResult()), mean = define(op.getMean()),
              rstd = define(op.getRstd());
  call("layerNorm",
       {name(op.getInput()), name(op.getWeight()), name(op.getBias()),
        cpp::literal(op.getEps().convertToDouble()), out, mean, rstd, str(rows), str(n)});
  return success();
}

LogicalResult StepPrinter::print(LayerNormGradInputOp op) {
  auto [rows, n] = rowsAndLast(op.getInput());
  std::string out = define(op.getResult());
  call("layerNormGradInput", {name(op.getInput()), name(op.getWeight()), name(op.getMean()),
                              name(op.getRstd()), name(op.getGrad()), out, str(rows), str(n)});
  return success();
}

LogicalResult StepPrinter::print(LayerNormGradParamsOp op) {
  auto [rows, n] = rowsAndLast(op.getInput());
  std::string dw = define(op.getWeightGrad()), db = define(op.getBiasGrad());
  call("layerNormGradParams", {name(op.getInput()), name(op.getMean()), name(op.getRstd()),
                               name(op.getGrad()), dw, db, str(rows), str(n)});
  return success();
}

/// Where a rank's block of `size` rows (or classes) starts and how many
/// there are in all, split over `axes`: the kernels' `first, vocab`
/// arguments; none when nothing is split.
SmallVector<std::string> StepPrinter::blockOf(std::optional<ArrayRef<int16_t>> axes, int64_t size) {
  if (!axes)
    return {};
  std::string along = axesOf(*axes);
  return {"int64_t(ctx.indexAlong(" + along + ")) * " + str(size),
          "int64_t(ctx.spanOf(" + along + ")) * " + str(size)};
}

LogicalResult StepPrinter::print(EmbeddingOp op) {
  ArrayRef<int64_t> table = shapeOf(op.getTable());
  std::string out = define(op.getResult());
  SmallVector<std::string> args{
      name(op.getTable()), name(op.getIndices()), out, str(elements(op.getIndices())),
      str(table[0]),       str(table[1])};
  llvm::append_range(args, blockOf(op.getRowAxes(), table[0]));
  call("embedding", args);
  return success();
}

LogicalResult StepPrinter::print(EmbeddingGradOp op) {
  ArrayRef<int64_t> table = shapeOf(op.getResult());
  std::string out = define(op.getResult());
  SmallVector<std::string> args{name(op.getIndices()),          name(op.getGrad()), out,
                                str(elements(op.getIndices())), str(table[0]),      str(table[1])};
  llvm::append_range(args, blockOf(op.getRowAxes(), table[0]));
  call("embeddingGrad", args);
  return success();
}

// A rank's heads are its channels divided by the head size.
LogicalResult StepPrinter::print(CausalAttentionOp op) {
  ArrayRef<int64_t> q = shapeOf(op.getQ());
  std::string out = define(op.getResult()), lse = define(op.getLse());
  call("causalAttention", {name(op.getQ()), name(op.getK()), name(op.getV()), out, lse, str(q[0]),
                           str(q[1]), str(q[2]), str(q[2] / op.getHeadDim())});
  return success();
}

LogicalResult StepPrinter::print(CausalAttentionGradOp op) {
  ArrayRef<int64_t> q = shapeOf(op.getQ());
  std::string dq = define(op.getQGrad()), dk = define(op.getKGrad()), dv = define(op.getVGrad());
  call("causalAttentionGrad",
       {name(op.getQ()), name(op.getK()), name(op.getV()), name(op.getLse()), name(op.getGrad()),
        dq, dk, dv, str(q[0]), str(q[1]), str(q[2]), str(q[2] / op.getHeadDim())});
  return success();
}

LogicalResult StepPrinter::print(CrossEntropyOp op) {
  auto [rows, classes] = rowsAndLast(op.getLogits());
  std::string out = define(op.getResult());
  call("crossEntropy", {name(op.getLogits()), name(op.getLabels()), out, str(rows), str(classes)});
  return success();
}

LogicalResult StepPrinter::print(CrossEntropyGradOp op) {
  auto [rows, classes] = rowsAndLast(op.getLogits());
  std::string out = define(op.getResult());
  SmallVector<std::string> args{
      name(op.getLogits()), name(op.getLabels()), name(op.getGrad()), out, str(rows), str(classes)};
  if (Value lse = op.getLse()) {
    args.push_back(name(lse));
    llvm::append_range(args, blockOf(op.getClassAxes(), classes));
  }
  call("crossEntropyGrad", args);
  return success();
}

LogicalResult StepPrinter::print(CrossEntropyPartialOp op) {
  auto [rows, classes] = rowsAndLast(op.getLogits());
  std::string out = define(op.getResult());
  SmallVector<std::string> args{name(op.getLogits()), name(op.getLabels()), out, str(rows),
                                str(classes)};
  llvm::append_range(args, blockOf(op.getClassAxes(), classes));
  call("crossEntropyPartial", args);
  return success();
}

LogicalResult StepPrinter::print(CrossEntropyCombineOp op) {
  int64_t rows = elements(op.getLabels());
  std::string loss = define(op.getResult()), lse = define(op.getLse());
  call("crossEntropyCombine", {name(op.getParts()), name(op.getLabels()), loss, lse, str(rows),
                               str(shapeOf(op.getParts())[0] / 2)});
  return success();
}

LogicalResult StepPrinter::print(CorrectOp op) {
  auto [rows, classes] = rowsAndLast(op.getLogits());
  std::string out = define(op.getResult());
  call("correct", {name(op.getLogits()), name(op.getLabels()), out, str(rows), str(classes)});
  return success();
}

LogicalResult StepPrinter::print(ArgmaxPartialOp op) {
  auto [rows, classes] = rowsAndLast(op.getLogits());
  std::string out = define(op.getResult());
  call("argmaxPartial", {name(op.getLogits()), out, str(rows), str(classes),
                         blockOf(op.getClassAxes(), classes).front()});
  return success();
}

LogicalResult StepPrinter::print(CorrectCombineOp op) {
  std::string out = define(op.getResult());
  call("correctCombine", {name(op.getParts()), name(op.getLabels()), out,
                          str(elements(op.getLabels())), str(shapeOf(op.getParts())[0] / 2)});
  return success();
}

/// The mask is drawn by global index: the partitioner left the input's
/// layout on the op, from which each rank finds its offsets; inside repeats
/// the layer indices, flattened, pick the layer's own mask.
LogicalResult StepPrinter::print(DropoutOp op) {
  auto layouts = op->getAttrOfType<ArrayAttr>(attr::shardings);
  if (!layouts)
    return op.emitError("dropout needs its layout (`dtl.shardings`) from dtl-partition");
  auto layout = cast<ShardingAttr>(layouts[0]);
  SmallVector<int64_t> local(shapeOf(op.getInput())), global = local;
  SmallVector<std::string> offsets;
  for (auto [d, axes] : llvm::enumerate(layout.getDims())) {
    for (int16_t a : axes.asArrayRef())
      global[d] *= mesh_.getSizes()[a];
    offsets.push_back(axes.empty() ? "0"
                                   : "int64_t(ctx.indexAlong(" + axesOf(axes.asArrayRef()) +
                                         ")) * " + str(local[d]));
  }
  std::string layer = "-1";
  for (auto [index, count] : llvm::zip(op.getLayers(), op.getLayerCounts())) {
    auto global = globalLayers_.find(index);
    std::string n = global != globalLayers_.end() ? global->second : name(index);
    layer = layer == "-1" ? n : "(" + layer + ") * " + str(count) + " + " + n;
  }
  std::string out = define(op.getResult());
  StaticArray localShape = staticArray("local", local), globalShape = staticArray("global", global);
  os_ << "{\n";
  os_.indent();
  if (!local.empty())
    os_ << localShape.declaration << "\n"
        << globalShape.declaration << "\nconst int64_t offsets[] = {" << llvm::join(offsets, ", ")
        << "};\n";
  call("dropout",
       {name(op.getInput()), out, str(local.size()), localShape.argument, globalShape.argument,
        local.empty() ? "nullptr" : "offsets", cpp::literal(op.getRate().convertToDouble()),
        str(seed_) + "ull", str(op.getStream()), layer, name(op.getStep())});
  os_.unindent();
  os_ << "}\n";
  return success();
}

LogicalResult StepPrinter::print(AdamwUpdateOp op) {
  std::string param = define(op.getNewParam()), m = define(op.getNewM()), v = define(op.getNewV());
  call("adamwUpdate",
       {name(op.getParam()), name(op.getGrad()), name(op.getM()), name(op.getV()), name(op.getLr()),
        name(op.getStep()), name(op.getGradScale()), cpp::literal(op.getBeta1().convertToDouble()),
        cpp::literal(op.getBeta2().convertToDouble()), cpp::literal(op.getEps().convertToDouble()),
        cpp::literal(op.getWeightDecay().convertToDouble()), param, m, v,
        str(elements(op.getParam()))});
  return success();
}

LogicalResult StepPrinter::print(SgdUpdateOp op) {
  std::string param = define(op.getNewParam()), buf = define(op.getNewMomentumBuf());
  call("sgdUpdate",
       {name(op.getParam()), name(op.getGrad()), name(op.getMomentumBuf()), name(op.getLr()),
        name(op.getGradScale()), cpp::literal(op.getMomentum().convertToDouble()),
        cpp::literal(op.getWeightDecay().convertToDouble()), param, buf,
        str(elements(op.getParam()))});
  return success();
}

//===----------------------------------------------------------------------===//
// Repeated layers
//===----------------------------------------------------------------------===//

/// A loop over the layers. Each carried value lives in its result's buffer
/// (copied in before the loop, and from what the body yields after each
/// layer); a stacked operand's slice is a view; a stacked result's slice is
/// written in place by the value the body yields (the buffer plan put it
/// there), or copied.
LogicalResult StepPrinter::print(RepeatOp op) {
  for (Value r : op.getResults())
    define(r);
  for (auto [init, result] : llvm::zip(op.getInits(), op.getCarryResults()))
    call("copy", {name(init), name(result), bytesOf(result)});
  std::string i = "i" + str(nextIndex_++);
  int64_t count = op.getCount();
  if (op.getReverse())
    os_ << "for (int64_t " << i << " = " << count - 1 << "; " << i << " >= 0; --" << i << ") {\n";
  else
    os_ << "for (int64_t " << i << " = 0; " << i << " < " << count << "; ++" << i << ") {\n";
  os_.indent();
  names_[op.getIndex()] = i;
  // A pipeline stage's layers (dtl-schedule-pipeline put them in its case,
  // with the model's layer they start at): what the body draws by layer (a
  // dropout mask) takes the model's index; its slices stay local.
  if (auto first = op->getAttrOfType<IntegerAttr>(attr::firstLayer);
      first && !op.getIndex().use_empty()) {
    std::string layer = "l" + str(nextIndex_++);
    os_ << "const int64_t " << layer << " = " << first.getInt() << " + " << i << ";\n";
    globalLayers_[op.getIndex()] = layer;
  }
  // Run whole, an interleaved or uneven pipeline's layers are stored by
  // stage (no iteration touches an uneven one's holes).
  std::string slot = i;
  if ((op.getVirtualStages() || op.getStageLayers()) && !stageAxes(op, mesh_).empty()) {
    slot = "s" + str(nextIndex_++);
    int64_t stages = mesh_.span(stageAxes(op, mesh_));
    os_ << "static constexpr int64_t " << slot << "_of[] = {";
    for (int64_t layer = 0; layer < count; ++layer)
      os_ << (layer ? ", " : "") << op.storedLayer(layer, stages);
    os_ << "};\nconst int64_t " << slot << " = " << slot << "_of[" << i << "];\n";
  }
  stackedSlots_[op] = slot;
  for (auto [arg, result] : llvm::zip(op.getCarryArgs(), op.getCarryResults()))
    alias(arg, result);
  for (auto [arg, stacked] : llvm::zip(op.getStackedArgs(), op.getStacked())) {
    std::string n = "t" + str(nextName_++), type = elementType(arg.getType());
    os_ << "const " << type << " *const " << n << " = " << name(stacked) << " + " << slot << " * "
        << elements(arg) << ";\n";
    names_[arg] = n;
  }
  for (auto [arg, invariant] : llvm::zip(op.getInvariantArgs(), op.getInvariants()))
    alias(arg, invariant);
  if (failed(printBlock(op.getBodyBlock())))
    return failure();
  // Stacked slices first: they may read a carried value (its value at this
  // layer) that the carries' copies then overwrite.
  size_t carries = op.getInits().size();
  ValueRange yielded = op.getYield().getValues();
  for (auto [k, value] : llvm::enumerate(yielded.drop_front(carries))) {
    auto place = value.getDefiningOp() && value.getParentBlock() == &op.getBodyBlock()
                     ? cast<PlaceAttr>(value.getDefiningOp()->getAttrOfType<ArrayAttr>(
                           attr::place)[cast<OpResult>(value).getResultNumber()])
                     : PlaceAttr();
    if (place && place.getKind() == PlaceKind::slice && place.getIndex() == int64_t(k))
      continue; // written there already
    if (op.getAccumulate()) {
      std::string first = str(op.getReverse() ? count - 1 : 0);
      call("accumulate", {name(value), name(op.getStackedResults()[k]), str(elements(value)),
                          i + " == " + first});
      continue;
    }
    call("copy", {name(value),
                  name(op.getStackedResults()[k]) + " + " + slot + " * " + str(elements(value)),
                  bytesOf(value)});
  }
  for (auto [value, arg, result] :
       llvm::zip(yielded.take_front(carries), op.getCarryArgs(), op.getCarryResults())) {
    if (value == arg)
      continue;
    if (llvm::is_contained(op.getCarryArgs(), value))
      return op.emitError("yields one carried value as another's; the printer copies carried "
                          "values in place and cannot swap them");
    call("copy", {name(value), name(result), bytesOf(value)});
  }
  os_.unindent();
  os_ << "}\n";
  return success();
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

std::string StepPrinter::describe(StringRef kind, ArrayRef<int16_t> axes, Value input) {
  SmallVector<std::string> names;
  for (int16_t a : axes)
    names.push_back(mesh_.getNames()[a].getValue().str());
  return cpp::quoted((kind + " over [" + llvm::join(names, ", ") + "] of " + str(elements(input)) +
                      " elements in " + functionName_)
                         .str());
}

LogicalResult StepPrinter::collective(StringRef kind, StringRef method, Operation *op,
                                      ArrayRef<int64_t> dims, ArrayRef<int16_t> axes) {
  auto slot = op->getAttrOfType<IntegerAttr>(attr::slot);
  if (!slot)
    return op->emitError("has no `dtl.slot`: run dtl-schedule-collectives first");
  Value input = op->getOperand(0), result = op->getResult(0);
  std::string out = define(result);
  SmallVector<std::string> args{"ctx", name(input), out};
  if (kind == "all_reduce")
    args.push_back(str(elements(input)));
  else
    args.push_back(cpp::list(shapeOf(input)));
  for (int64_t d : dims)
    args.push_back(str(d));
  args.append({axesOf(axes), str(slot.getInt()), describe(kind, axes, input)});
  os_ << target_.ns() << "::" << method << "<" << elementType(result.getType()) << ">("
      << llvm::join(args, ", ") << ");\n";
  return success();
}

LogicalResult StepPrinter::print(shard::AllReduceOp op) {
  return collective("all_reduce", "allReduceSum", op, {}, op.getGridAxes());
}

LogicalResult StepPrinter::print(shard::ReduceScatterOp op) {
  return collective("reduce_scatter", "reduceScatterSum", op,
                    {int64_t(op.getScatterAxis().getZExtValue())}, op.getGridAxes());
}

LogicalResult StepPrinter::print(shard::AllGatherOp op) {
  return collective("all_gather", "allGather", op, {int64_t(op.getGatherAxis().getZExtValue())},
                    op.getGridAxes());
}

LogicalResult StepPrinter::print(shard::AllToAllOp op) {
  return collective(
      "all_to_all", "allToAll", op,
      {int64_t(op.getSplitAxis().getZExtValue()), int64_t(op.getConcatAxis().getZExtValue())},
      op.getGridAxes());
}

// Local: this rank's slice, on the compute stream.
LogicalResult StepPrinter::print(shard::AllSliceOp op) {
  std::string out = define(op.getResult());
  os_ << target_.ns() << "::allSlice<" << elementType(op.getResult().getType()) << ">(ctx, "
      << name(op.getInput()) << ", " << out << ", " << cpp::list(shapeOf(op.getInput())) << ", "
      << op.getSliceAxis().getZExtValue() << ", " << axesOf(op.getGridAxes()) << ");\n";
  return success();
}

// The awaited value is the pending buffer itself.
LogicalResult StepPrinter::print(CollectiveWaitOp op) {
  Value pending = op.getPending();
  while (auto view = pending.getDefiningOp<ViewLikeOpInterface>())
    pending = view.getViewSource();
  auto slot = pending.getDefiningOp()
                  ? pending.getDefiningOp()->getAttrOfType<IntegerAttr>(attr::slot)
                  : IntegerAttr();
  if (!slot)
    return op.emitError("waits for no collective with a `dtl.slot`");
  os_ << target_.ns() << "::waitFor(" << slot.getInt() << ");\n";
  alias(op.getResult(), op.getPending());
  return success();
}

LogicalResult StepPrinter::print(func::ReturnOp op) {
  for (auto [k, v] : llvm::enumerate(op.getOperands())) {
    auto owner = dyn_cast<OpResult>(v);
    if (owner && owner.getOwner()->hasAttr(attr::inPlace))
      continue; // written there already
    call("copy", {name(v), "results[" + str(k) + "]", bytesOf(v)});
  }
  return success();
}
