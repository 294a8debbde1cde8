//===- DtlOps.cpp - dtl ops: shape rules, verifiers, regions --------------===//
//
// Each op's shape rule lives here once: the frontend calls it to report a
// user's mistake at its source, and InferTypeOpInterface checks every op
// against it.
//
//===----------------------------------------------------------------------===//

#include "dialects/dtl/DtlOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace dtl;

#include "dialects/dtl/DtlInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/dtl/DtlOps.cpp.inc"

static ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }

/// inferReturnTypes of a one-result op from its shape rule's answer.
static LogicalResult pushType(FailureOr<RankedTensorType> type, SmallVectorImpl<Type> &types) {
  if (failed(type))
    return failure();
  types.push_back(*type);
  return success();
}

static RankedTensorType withShape(RankedTensorType like, ArrayRef<int64_t> shape) {
  return RankedTensorType::get(shape, like.getElementType());
}

/// An f32 statistic (a row's mean, a log-sum-exp, a loss) of `shape`.
static RankedTensorType f32Shaped(RankedTensorType like, ArrayRef<int64_t> shape) {
  return RankedTensorType::get(shape, Float32Type::get(like.getContext()));
}

static bool isReal(Type t) { return isa<Float32Type, BFloat16Type>(t); }

/// Results of a Dtl_MixedRealOp: the inferred shapes, in f32 or bf16.
static bool sameShapesAnyReal(TypeRange inferred, TypeRange actual) {
  if (inferred.size() != actual.size())
    return false;
  for (auto [l, r] : llvm::zip(inferred, actual)) {
    auto a = dyn_cast<RankedTensorType>(l), b = dyn_cast<RankedTensorType>(r);
    if (!a || !b || a.getShape() != b.getShape() || !isReal(a.getElementType()) ||
        !isReal(b.getElementType()))
      return false;
  }
  return true;
}

bool MatmulOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) { return sameShapesAnyReal(l, r); }
bool MatmulBiasOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return sameShapesAnyReal(l, r);
}
bool ReduceSumOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return sameShapesAnyReal(l, r);
}

std::string dtl::formatType(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << type;
    return s;
  }
  std::string s;
  llvm::raw_string_ostream os(s);
  os << (t.getElementType().isF32()         ? "f32"
         : t.getElementType().isBF16()      ? "bf16"
         : t.getElementType().isInteger(32) ? "i32"
                                            : "?")
     << '[';
  llvm::interleaveComma(t.getShape(), os);
  os << ']';
  return s;
}

//===----------------------------------------------------------------------===//
// Shape rules
//===----------------------------------------------------------------------===//

FailureOr<RankedTensorType> MatmulOp::inferResultType(std::optional<Location> loc,
                                                      RankedTensorType lhs, RankedTensorType rhs,
                                                      bool transposeLhs, bool transposeRhs) {
  auto operand = [](RankedTensorType t, bool transposed) {
    return transposed ? "transpose(" + formatType(t) + ")" : formatType(t);
  };
  if (lhs.getRank() < 2 || rhs.getRank() != 2)
    return emitOptionalError(loc, "'@' needs a 2-D (or batched, [..., K]) lhs and a 2-D rhs, got ",
                             formatType(lhs), " @ ", formatType(rhs));
  if (transposeLhs && lhs.getRank() > 2)
    return emitOptionalError(loc, "a transposed lhs of '@' must be 2-D, got ", formatType(lhs));
  ArrayRef<int64_t> a = lhs.getShape(), b = rhs.getShape();
  int64_t k = transposeLhs ? a[0] : a.back(), k2 = transposeRhs ? b[1] : b[0];
  int64_t n = transposeRhs ? b[0] : b[1];
  if (k != k2)
    return emitOptionalError(loc, "shape mismatch in '@': ", operand(lhs, transposeLhs), " @ ",
                             operand(rhs, transposeRhs), " contracts ", k, " with ", k2);
  SmallVector<int64_t> shape =
      transposeLhs ? SmallVector<int64_t>{a[1]} : SmallVector<int64_t>(a.drop_back());
  shape.push_back(n);
  return withShape(lhs, shape);
}

LogicalResult MatmulOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                         Adaptor adaptor, SmallVectorImpl<Type> &types) {
  return pushType(inferResultType(loc, cast<RankedTensorType>(adaptor.getLhs().getType()),
                                  cast<RankedTensorType>(adaptor.getRhs().getType()),
                                  adaptor.getTransposeLhs(), adaptor.getTransposeRhs()),
                  types);
}

LogicalResult MatmulBiasOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                             Adaptor adaptor, SmallVectorImpl<Type> &types) {
  FailureOr<RankedTensorType> t =
      MatmulOp::inferResultType(loc, cast<RankedTensorType>(adaptor.getLhs().getType()),
                                cast<RankedTensorType>(adaptor.getRhs().getType()),
                                adaptor.getTransposeLhs(), adaptor.getTransposeRhs());
  if (failed(t))
    return failure();
  if (shapeOf(adaptor.getBias()) != t->getShape().take_back())
    return emitOptionalError(loc,
                             "matmul_bias needs a bias shaped like the result's last "
                             "dimension, got ",
                             formatType(adaptor.getBias().getType()), " for ", formatType(*t));
  types.push_back(*t);
  return success();
}

FailureOr<RankedTensorType> ReduceSumOp::inferResultType(std::optional<Location> loc,
                                                         RankedTensorType input,
                                                         ArrayRef<int64_t> dims, bool keepDims) {
  for (auto [i, d] : llvm::enumerate(dims))
    if (d < 0 || d >= input.getRank() || llvm::is_contained(dims.take_front(i), d))
      return emitOptionalError(loc, "axis ", d, " is out of range or repeated for ",
                               formatType(input));
  SmallVector<int64_t> shape;
  for (auto [d, size] : llvm::enumerate(input.getShape())) {
    bool reduced = llvm::is_contained(dims, (int64_t)d);
    if (!reduced || keepDims)
      shape.push_back(reduced ? 1 : size);
  }
  return withShape(input, shape);
}

LogicalResult ReduceSumOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                            Adaptor adaptor, SmallVectorImpl<Type> &types) {
  return pushType(inferResultType(loc, cast<RankedTensorType>(adaptor.getInput().getType()),
                                  adaptor.getDims(), adaptor.getKeepDims()),
                  types);
}

FailureOr<std::pair<RankedTensorType, RankedTensorType>>
LayerNormOp::inferResultTypes(std::optional<Location> loc, RankedTensorType input,
                              RankedTensorType weight, RankedTensorType bias) {
  ArrayRef<int64_t> x = input.getShape();
  if (x.empty() || weight.getShape() != x.take_back() || bias.getShape() != x.take_back())
    return emitOptionalError(loc,
                             "layernorm(x, weight, bias) needs weight and bias shaped like "
                             "x's last dimension, got ",
                             formatType(input), ", ", formatType(weight), ", ", formatType(bias));
  return std::make_pair(input, f32Shaped(input, x.drop_back()));
}

LogicalResult LayerNormOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                            Adaptor adaptor, SmallVectorImpl<Type> &types) {
  auto t = inferResultTypes(loc, cast<RankedTensorType>(adaptor.getInput().getType()),
                            cast<RankedTensorType>(adaptor.getWeight().getType()),
                            cast<RankedTensorType>(adaptor.getBias().getType()));
  if (failed(t))
    return failure();
  types.append({t->first, t->second, t->second});
  return success();
}

FailureOr<RankedTensorType> EmbeddingOp::inferResultType(std::optional<Location> loc,
                                                         RankedTensorType table,
                                                         RankedTensorType indices) {
  if (table.getRank() != 2 || !isReal(table.getElementType()) ||
      !indices.getElementType().isInteger(32))
    return emitOptionalError(loc,
                             "embedding(table, ids) needs an f32 table [V, C] and i32 ids, "
                             "got ",
                             formatType(table), " and ", formatType(indices));
  SmallVector<int64_t> shape(indices.getShape());
  shape.push_back(table.getShape()[1]);
  return withShape(table, shape);
}

LogicalResult EmbeddingOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                            Adaptor adaptor, SmallVectorImpl<Type> &types) {
  return pushType(inferResultType(loc, cast<RankedTensorType>(adaptor.getTable().getType()),
                                  cast<RankedTensorType>(adaptor.getIndices().getType())),
                  types);
}

FailureOr<std::pair<RankedTensorType, RankedTensorType>>
CausalAttentionOp::inferResultTypes(std::optional<Location> loc, RankedTensorType q,
                                    RankedTensorType k, RankedTensorType v, int64_t headDim) {
  if (q.getRank() != 3 || k != q || v != q)
    return emitOptionalError(loc, "causal_attention needs q, k and v of one shape [B, T, C], got ",
                             formatType(q), ", ", formatType(k), ", ", formatType(v));
  ArrayRef<int64_t> s = q.getShape();
  if (headDim < 1 || s[2] % headDim != 0)
    return emitOptionalError(loc, "causal_attention's heads of ", headDim,
                             " channels must divide the ", s[2], " channels");
  return std::make_pair(q, f32Shaped(q, {s[0], s[2] / headDim, s[1]}));
}

LogicalResult CausalAttentionOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                                  Adaptor adaptor, SmallVectorImpl<Type> &types) {
  auto t = inferResultTypes(loc, cast<RankedTensorType>(adaptor.getQ().getType()),
                            cast<RankedTensorType>(adaptor.getK().getType()),
                            cast<RankedTensorType>(adaptor.getV().getType()), adaptor.getHeadDim());
  if (failed(t))
    return failure();
  types.append({t->first, t->second});
  return success();
}

FailureOr<RankedTensorType> TransposeOp::inferResultType(std::optional<Location> loc,
                                                         RankedTensorType input,
                                                         ArrayRef<int64_t> permutation) {
  SmallVector<bool> seen(input.getRank(), false);
  SmallVector<int64_t> shape;
  for (int64_t p : permutation) {
    if (p < 0 || p >= input.getRank() || seen[p] || (int64_t)permutation.size() != input.getRank())
      return emitOptionalError(loc, "the permutation must list each of the ", input.getRank(),
                               " dimensions of ", formatType(input), " once");
    seen[p] = true;
    shape.push_back(input.getShape()[p]);
  }
  return withShape(input, shape);
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                            Adaptor adaptor, SmallVectorImpl<Type> &types) {
  return pushType(inferResultType(loc, cast<RankedTensorType>(adaptor.getInput().getType()),
                                  adaptor.getPermutation()),
                  types);
}

FailureOr<RankedTensorType> CrossEntropyOp::inferResultType(std::optional<Location> loc,
                                                            RankedTensorType logits,
                                                            RankedTensorType labels) {
  if (logits.getRank() < 2 || !isReal(logits.getElementType()) ||
      !labels.getElementType().isInteger(32) || logits.getShape().drop_back() != labels.getShape())
    return emitOptionalError(loc,
                             "cross_entropy needs f32 logits [..., C] and i32 labels "
                             "[...], got ",
                             formatType(logits), " and ", formatType(labels));
  return f32Shaped(logits, labels.getShape());
}

LogicalResult CrossEntropyOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                               Adaptor adaptor, SmallVectorImpl<Type> &types) {
  return pushType(inferResultType(loc, cast<RankedTensorType>(adaptor.getLogits().getType()),
                                  cast<RankedTensorType>(adaptor.getLabels().getType())),
                  types);
}

LogicalResult CorrectOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                          Adaptor adaptor, SmallVectorImpl<Type> &types) {
  return pushType(
      CrossEntropyOp::inferResultType(loc, cast<RankedTensorType>(adaptor.getLogits().getType()),
                                      cast<RankedTensorType>(adaptor.getLabels().getType())),
      types);
}

//===----------------------------------------------------------------------===//
// Verifiers of ops whose result types are given
//===----------------------------------------------------------------------===//

LogicalResult BroadcastOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  ArrayRef<int64_t> dims = getDims();
  if (dims.size() != in.size())
    return emitOpError("needs one result dimension per operand dimension");
  for (auto [i, d] : llvm::enumerate(dims)) {
    if (d < 0 || d >= (int64_t)out.size() || (i > 0 && d <= dims[i - 1]))
      return emitOpError("dims must increase and lie within the result rank");
    if (in[i] != out[d] && in[i] != 1)
      return emitOpError("operand dimension ")
             << i << " (" << in[i] << ") cannot broadcast to " << out[d];
  }
  return success();
}

LogicalResult CrossEntropyGradOp::verify() {
  if (shapeOf(getGrad()) != shapeOf(getLabels()))
    return emitOpError("needs one gradient per example");
  if (failed(CrossEntropyOp::inferResultType(getLoc(),
                                             cast<RankedTensorType>(getLogits().getType()),
                                             cast<RankedTensorType>(getLabels().getType()))))
    return failure();
  if (getResult().getType() != getLogits().getType())
    return emitOpError("the gradient is shaped like the logits");
  if (bool(getLse()) != bool(getClassAxes()))
    return emitOpError("takes `lse` exactly when its classes are split (`class_axes`)");
  if (getLse() && shapeOf(getLse()) != shapeOf(getLabels()))
    return emitOpError("needs one log-sum-exp per example");
  return success();
}

/// A partial op's result: [2, rows...] for logits [rows..., classes].
static LogicalResult verifyPartial(Operation *op, Value logits, Value result) {
  SmallVector<int64_t> parts{2};
  llvm::append_range(parts, shapeOf(logits).drop_back());
  if (shapeOf(result) != ArrayRef<int64_t>(parts))
    return op->emitOpError("gives [2, examples...]: two statistics per example");
  return success();
}

/// A combine op's operands: parts [2 n, rows...] for labels [rows...].
static LogicalResult verifyCombine(Operation *op, Value parts, Value labels) {
  ArrayRef<int64_t> shape = shapeOf(parts);
  if (shape.empty() || shape[0] % 2 != 0 || shape.drop_front() != shapeOf(labels))
    return op->emitOpError("needs parts [2 n, examples...] for labels [examples...]");
  for (Value result : op->getResults())
    if (shapeOf(result) != shapeOf(labels))
      return op->emitOpError("gives one value per example");
  return success();
}

LogicalResult CrossEntropyPartialOp::verify() {
  if (failed(CrossEntropyOp::inferResultType(getLoc(),
                                             cast<RankedTensorType>(getLogits().getType()),
                                             cast<RankedTensorType>(getLabels().getType()))))
    return failure();
  return verifyPartial(*this, getLogits(), getResult());
}

LogicalResult CrossEntropyCombineOp::verify() {
  return verifyCombine(*this, getParts(), getLabels());
}

LogicalResult ArgmaxPartialOp::verify() {
  if (shapeOf(getLogits()).empty())
    return emitOpError("needs logits with a class dimension");
  return verifyPartial(*this, getLogits(), getResult());
}

LogicalResult CorrectCombineOp::verify() { return verifyCombine(*this, getParts(), getLabels()); }

LogicalResult DropoutOp::verify() {
  if (getLayers().size() != getLayerCounts().size())
    return emitOpError("needs one count per layer index");
  if (llvm::any_of(getLayerCounts(), [](int64_t c) { return c < 1; }))
    return emitOpError("layer counts must be positive");
  double rate = getRate().convertToDouble();
  if (!(rate >= 0 && rate < 1))
    return emitOpError("rate must lie in [0, 1)");
  return success();
}

std::optional<SmallVector<ReshapeGroup>> dtl::reshapeGroups(ArrayRef<int64_t> in,
                                                            ArrayRef<int64_t> out) {
  SmallVector<ReshapeGroup> groups;
  int64_t i = 0, j = 0;
  while (i < (int64_t)in.size() && j < (int64_t)out.size()) {
    ReshapeGroup g{i, i + 1, j, j + 1};
    int64_t a = in[i], b = out[j];
    while (a != b) {
      if (a < b && g.inEnd < (int64_t)in.size())
        a *= in[g.inEnd++];
      else if (b < a && g.outEnd < (int64_t)out.size())
        b *= out[g.outEnd++];
      else
        return std::nullopt;
    }
    if (g.inEnd - g.inBegin > 1 && g.outEnd - g.outBegin > 1)
      return std::nullopt;
    groups.push_back(g);
    i = g.inEnd;
    j = g.outEnd;
  }
  // Trailing size-1 dimensions join the last group.
  for (; i < (int64_t)in.size(); ++i)
    if (in[i] != 1 || groups.empty())
      return std::nullopt;
    else
      groups.back().inEnd = i + 1;
  for (; j < (int64_t)out.size(); ++j)
    if (out[j] != 1 || groups.empty())
      return std::nullopt;
    else
      groups.back().outEnd = j + 1;
  return groups;
}

LogicalResult ReshapeOp::checkShapes(std::optional<Location> loc, RankedTensorType input,
                                     RankedTensorType result) {
  auto cannot = [&](StringRef why) {
    return emitOptionalError(loc, "cannot reshape ", formatType(input), " to ", formatType(result),
                             ": ", why);
  };
  if (input.getElementType() != result.getElementType())
    return cannot("a reshape keeps the element type");
  if (input.getNumElements() != result.getNumElements() ||
      (input.getRank() > 0 && result.getRank() > 0 &&
       !reshapeGroups(input.getShape(), result.getShape())))
    return cannot("reshapes keep the element count and merge or split neighbouring dimensions");
  return success();
}

LogicalResult ReshapeOp::verify() {
  return checkShapes(getLoc(), cast<RankedTensorType>(getInput().getType()),
                     cast<RankedTensorType>(getResult().getType()));
}

Value ReshapeOp::getViewSource() { return getInput(); }
Value StackedSliceOp::getViewSource() { return getInput(); }

LogicalResult StackedSliceOp::verify() {
  auto input = cast<RankedTensorType>(getInput().getType());
  auto result = cast<RankedTensorType>(getResult().getType());
  // One slice drops the leading dimension; a block of n slices keeps it.
  bool block = input.getRank() == result.getRank();
  if (input.getRank() < 1 || input.getElementType() != result.getElementType() ||
      (block ? input.getShape().drop_front() != result.getShape().drop_front() ||
                   result.getShape()[0] < 1
             : input.getShape().drop_front() != result.getShape()))
    return emitOpError("needs a result of the input's type without its leading dimension, or "
                       "with a leading dimension of its own");
  int64_t blocks = input.getShape()[0] / (block ? result.getShape()[0] : 1);
  if (getIndex() < 0 || getIndex() >= blocks)
    return emitOpError("index ") << getIndex() << " is outside the " << blocks
                                 << " whole blocks of the leading dimension";
  return success();
}
Value CollectiveWaitOp::getViewSource() { return getPending(); }

//===----------------------------------------------------------------------===//
// dtl.repeat
//===----------------------------------------------------------------------===//

bool RepeatOp::runsAsStages() {
  auto loop = (*this)->getParentOfType<RepeatOp>();
  return getPipeline() && loop && loop.getAccumulate();
}

int64_t RepeatOp::storedLayer(int64_t layer, int64_t stages) {
  if (std::optional<ArrayRef<int64_t>> layers = getStageLayers()) {
    // Stage s's layers fill the first of its max(n) slots.
    int64_t slots = *llvm::max_element(*layers);
    for (auto [s, n] : llvm::enumerate(*layers)) {
      if (layer < n)
        return int64_t(s) * slots + layer;
      layer -= n;
    }
    llvm_unreachable("a layer beyond the stages' layers");
  }
  if (!getVirtualStages() || stages == 1)
    return layer;
  // Layer i is in piece v (of V, count / V layers each), block r of it;
  // stage r's block holds its share of every piece, in piece order.
  int64_t pieces = *getVirtualStages(), piece = getCount() / pieces, share = piece / stages;
  int64_t v = layer / piece, r = layer % piece / share, k = layer % share;
  return r * (getCount() / stages) + v * share + k;
}

int64_t RepeatOp::slots() {
  std::optional<ArrayRef<int64_t>> layers = getStageLayers();
  if (!layers)
    return getCount();
  int64_t slots = *llvm::max_element(*layers), total = 0;
  for (int64_t n : *layers)
    total += n;
  return getCount() == total ? slots * int64_t(layers->size()) : slots;
}

YieldOp RepeatOp::getYield() { return cast<YieldOp>(getBodyBlock().getTerminator()); }

LogicalResult RepeatOp::verifyRegions() {
  int64_t count = getCount();
  if (count < 1)
    return emitOpError("needs a positive count");
  if (std::optional<int64_t> chunks = getVirtualStages())
    if (!getPipeline() || count % *chunks)
      return emitOpError("virtual_stages ")
             << *chunks << " needs a pipelined repeat whose count they divide";
  if (std::optional<ArrayRef<int64_t>> layers = getStageLayers()) {
    int64_t total = 0;
    for (int64_t n : *layers)
      total += n;
    if (!getPipeline() || getVirtualStages() || layers->size() < 2 ||
        llvm::any_of(*layers, [](int64_t n) { return n < 1; }) ||
        (count != total && count != *llvm::max_element(*layers)))
      return emitOpError("stage_layers needs a pipelined repeat without virtual stages, at least "
                         "one layer per stage, and a count of their sum (or, as stages, their "
                         "largest)");
  }
  int64_t slots = this->slots();
  Block &body = getBodyBlock();
  size_t carries = getInits().size(), stacked = getStacked().size();
  if (body.getNumArguments() != 1 + carries + stacked + getInvariants().size() ||
      !body.getArgument(0).getType().isIndex())
    return emitOpError("the body takes the layer index, then one argument per carried, "
                       "stacked and invariant operand");
  for (auto [init, arg] : llvm::zip(getInits(), getCarryArgs()))
    if (init.getType() != arg.getType())
      return emitOpError("a carried value's body argument must have its type");
  for (auto [operand, arg] : llvm::zip(getStacked(), getStackedArgs())) {
    auto type = cast<RankedTensorType>(operand.getType());
    auto slice = dyn_cast<RankedTensorType>(arg.getType());
    if (type.getRank() == 0 || type.getShape()[0] != slots || !slice ||
        slice != withShape(type, type.getShape().drop_front()))
      return emitOpError("a stacked operand is [count, ...] and its body argument one slice");
  }
  for (auto [operand, arg] : llvm::zip(getInvariants(), getInvariantArgs()))
    if (operand.getType() != arg.getType())
      return emitOpError("an invariant's body argument must have its type");
  YieldOp yield = getYield();
  if (yield.getValues().size() != getResults().size())
    return emitOpError("the body yields each carried value, then one slice per stacked result");
  for (auto [i, value] : llvm::enumerate(yield.getValues())) {
    Type result = getResults()[i].getType();
    if (i < carries) {
      if (value.getType() != getInits()[i].getType() || result != value.getType())
        return emitOpError("carried value ") << i << " must keep its type";
      continue;
    }
    auto slice = dyn_cast<RankedTensorType>(value.getType());
    if (getAccumulate()) {
      if (!slice || !isa<FloatType>(slice.getElementType()) || result != slice)
        return emitOpError("summed result ")
               << i - carries << " must be a real tensor of the type its body yields";
      continue;
    }
    SmallVector<int64_t> shape{slots};
    if (slice)
      shape.append(slice.getShape().begin(), slice.getShape().end());
    if (!slice || result != withShape(slice, shape))
      return emitOpError("stacked result ") << i - carries << " must be [count] + its slice";
  }
  return success();
}

namespace {
/// Drops stacked results nobody reads (with what the body yields for them)
/// and stacked or invariant operands the body does not read: what autodiff
/// saved for a gradient no one asked for.
struct DropUnused : OpRewritePattern<RepeatOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RepeatOp op, PatternRewriter &rewriter) const override {
    size_t carries = op.getInits().size();
    SmallVector<unsigned> deadResults;
    for (auto [i, r] : llvm::enumerate(op.getStackedResults()))
      if (r.use_empty())
        deadResults.push_back(carries + i);
    SmallVector<unsigned> deadStacked, deadInvariants;
    for (auto [i, arg] : llvm::enumerate(op.getStackedArgs()))
      if (arg.use_empty())
        deadStacked.push_back(i);
    for (auto [i, arg] : llvm::enumerate(op.getInvariantArgs()))
      if (arg.use_empty())
        deadInvariants.push_back(i);
    if (deadResults.empty() && deadStacked.empty() && deadInvariants.empty())
      return failure();

    SmallVector<Value> stacked, invariants;
    for (auto [i, v] : llvm::enumerate(op.getStacked()))
      if (!llvm::is_contained(deadStacked, i))
        stacked.push_back(v);
    for (auto [i, v] : llvm::enumerate(op.getInvariants()))
      if (!llvm::is_contained(deadInvariants, i))
        invariants.push_back(v);
    SmallVector<Type> resultTypes;
    SmallVector<Value> yielded;
    YieldOp yield = op.getYield();
    for (auto [i, r] : llvm::enumerate(op.getResults()))
      if (!llvm::is_contained(deadResults, i)) {
        resultTypes.push_back(r.getType());
        yielded.push_back(yield.getValues()[i]);
      }
    auto replacement = RepeatOp::create(
        rewriter, op.getLoc(), resultTypes, op.getCountAttr(), op.getReverseAttr(),
        op.getAccumulateAttr(), op.getRecomputeAttr(), op.getPipelineAttr(),
        op.getVirtualStagesAttr(), op.getStageLayersAttr(), op.getInits(), stacked, invariants);
    rewriter.inlineRegionBefore(op.getBody(), replacement.getBody(), replacement.getBody().end());
    Block &body = replacement.getBodyBlock();
    rewriter.setInsertionPoint(body.getTerminator());
    rewriter.replaceOpWithNewOp<YieldOp>(body.getTerminator(), yielded);
    llvm::BitVector deadArgs(body.getNumArguments());
    for (unsigned i : deadStacked)
      deadArgs.set(1 + carries + i);
    for (unsigned i : deadInvariants)
      deadArgs.set(1 + carries + op.getStacked().size() + i);
    body.eraseArguments(deadArgs);
    unsigned next = 0;
    for (auto [i, r] : llvm::enumerate(op.getResults()))
      if (!llvm::is_contained(deadResults, i))
        rewriter.replaceAllUsesWith(r, replacement.getResult(next++));
    rewriter.eraseOp(op);
    return success();
  }
};
} // namespace

void RepeatOp::getCanonicalizationPatterns(RewritePatternSet &patterns, MLIRContext *context) {
  patterns.add<DropUnused>(context);
}

//===----------------------------------------------------------------------===//
// dtl.fused
//===----------------------------------------------------------------------===//

LogicalResult FusedOp::verifyRegions() {
  Block &body = getBodyBlock();
  auto result = cast<RankedTensorType>(getResult().getType());
  if (body.getNumArguments() != getInputs().size())
    return emitOpError("the body takes one element of each input");
  for (auto [input, arg] : llvm::zip(getInputs(), body.getArguments())) {
    auto type = cast<RankedTensorType>(input.getType());
    if (type.getShape() != result.getShape())
      return emitOpError("every input must have the result's shape");
    if (arg.getType() != RankedTensorType::get({}, type.getElementType()))
      return emitOpError("each body argument is one element (a rank-0 tensor) of its input");
  }
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield || yield.getValues().size() != 1 ||
      yield.getValues()[0].getType() != RankedTensorType::get({}, result.getElementType()))
    return emitOpError("the body yields one element of the result");
  return success();
}

/// A split's or concat's shapes: `pieces` are runs of `whole`'s dimension
/// `dim`, in order, each divisible into `interleave` blocks.
static LogicalResult verifyPieces(Operation *op, RankedTensorType whole, TypeRange pieces,
                                  int64_t dim, int64_t interleave) {
  if (pieces.empty())
    return op->emitOpError("needs at least one piece");
  if (dim < 0 || dim >= whole.getRank())
    return op->emitOpError("dimension ") << dim << " is not one of " << formatType(whole);
  if (interleave < 1)
    return op->emitOpError("interleave must be at least 1, got ") << interleave;
  int64_t total = 0;
  for (Type t : pieces) {
    auto piece = cast<RankedTensorType>(t);
    if (piece.getElementType() != whole.getElementType())
      return op->emitOpError("piece ")
             << formatType(piece) << " has another element type than " << formatType(whole);
    bool othersMatch = piece.getRank() == whole.getRank();
    for (int64_t d = 0; othersMatch && d < whole.getRank(); ++d)
      othersMatch = d == dim || piece.getDimSize(d) == whole.getDimSize(d);
    if (!othersMatch)
      return op->emitOpError("piece ") << formatType(piece) << " differs from " << formatType(whole)
                                       << " in a dimension other than " << dim;
    if (piece.getDimSize(dim) % interleave)
      return op->emitOpError("piece ") << formatType(piece) << " does not divide into "
                                       << interleave << " interleaved blocks";
    total += piece.getDimSize(dim);
  }
  if (total != whole.getDimSize(dim))
    return op->emitOpError("pieces add up to ")
           << total << " along dimension " << dim << ", not " << whole.getDimSize(dim);
  return success();
}

LogicalResult SplitOp::verify() {
  return verifyPieces(*this, cast<RankedTensorType>(getInput().getType()), getResults().getTypes(),
                      getDim(), getInterleave());
}

LogicalResult ConcatOp::verify() {
  return verifyPieces(*this, cast<RankedTensorType>(getResult().getType()), getInputs().getTypes(),
                      getDim(), getInterleave());
}
