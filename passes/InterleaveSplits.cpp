//===- InterleaveSplits.cpp - fused params stored for their split ---------===//
//
// See Passes.td. The cone of a split is walked back from its input along
// the split dimension; every value in it must be used only inside it, so
// storing its params permuted permutes nothing else.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

namespace dtl {
#define GEN_PASS_DEF_INTERLEAVESPLITS
#include "passes/Passes.h.inc"
} // namespace dtl

using namespace mlir;
using namespace dtl;

namespace {

/// The values a split's input is computed from along its dimension, each
/// with the dimension that maps to the split one.
class Cone {
public:
  explicit Cone(func::FuncOp fn) : fn_(fn) {}

  /// Adds `v` (read along `dim`) and what it is computed from; false when
  /// something in the cone does not treat the positions along it alike.
  bool add(Value v, int64_t dim) {
    auto [it, inserted] = dims_.try_emplace(v, dim);
    if (!inserted)
      return it->second == dim;
    if (auto arg = dyn_cast<BlockArgument>(v))
      return addArgument(arg, dim);
    Operation *op = v.getDefiningOp();
    if (op->getNumResults() != 1)
      return false;
    if (isa<ConstantOp>(op))
      return true; // one value everywhere
    if (isa<AddOp, SubOp, MulOp, DivOp, NegOp, ReluOp, ExpOp, LogOp, TanhOp, SqrtOp, GeluOp,
            ConvertOp, ShardingConstraintOp>(op)) {
      for (OpOperand &use : op->getOpOperands())
        if (!through(use, dim))
          return false;
      return true;
    }
    if (auto b = dyn_cast<BroadcastOp>(op)) {
      ArrayRef<int64_t> dims = b.getDims();
      auto it = llvm::find(dims, dim);
      int64_t in = it - dims.begin();
      // A new or repeated dimension: the bias is the same at every position.
      if (it == dims.end() || b.getInput().getType().getDimSize(in) == 1)
        return true;
      return through(b->getOpOperand(0), in);
    }
    if (auto m = dyn_cast<MatmulOp>(op)) {
      int64_t rank = m.getType().getRank();
      if (dim == rank - 1) // the columns: the rhs's
        return through(m->getOpOperand(1), m.getTransposeRhs() ? 0 : 1);
      if (m.getTransposeLhs()) // [K, M]: a row dimension of a 2-D product
        return through(m->getOpOperand(0), 1);
      return through(m->getOpOperand(0), dim);
    }
    return false;
  }

  /// Whether every value in the cone is read only where the walk went.
  bool closed() const {
    for (auto [v, dim] : dims_)
      for (OpOperand &use : v.getUses())
        if (!traversed_.contains(&use) && &use != root_)
          return false;
    return true;
  }

  void setRoot(OpOperand &use) { root_ = &use; }

  /// The params in the cone, by argument number, with their dimension.
  const SmallVector<std::pair<unsigned, int64_t>> &params() const { return params_; }

private:
  bool through(OpOperand &use, int64_t dim) {
    traversed_.insert(&use);
    return add(use.get(), dim);
  }

  bool addArgument(BlockArgument arg, int64_t dim) {
    Operation *owner = arg.getOwner()->getParentOp();
    if (owner == fn_.getOperation()) {
      if (argRole(fn_, arg.getArgNumber()) != Role::param)
        return false; // an input's data cannot be reordered
      params_.push_back({arg.getArgNumber(), dim});
      return true;
    }
    auto repeat = dyn_cast<RepeatOp>(owner);
    if (!repeat)
      return false;
    for (auto [operand, bodyArg] : llvm::zip(repeat.getStackedMutable(), repeat.getStackedArgs()))
      if (bodyArg == arg)
        return through(operand, dim + 1); // the layer dimension leads
    for (auto [operand, bodyArg] :
         llvm::zip(repeat.getInvariantsMutable(), repeat.getInvariantArgs()))
      if (bodyArg == arg)
        return through(operand, dim);
    return false; // carried: what the body yields would be reordered too
  }

  func::FuncOp fn_;
  DenseMap<Value, int64_t> dims_;
  DenseSet<OpOperand *> traversed_;
  OpOperand *root_ = nullptr;
  SmallVector<std::pair<unsigned, int64_t>> params_;
};

/// How many blocks the cone's params split the split's dimension into: the
/// one span of mesh axes every param split along it shares (1: none is).
std::optional<int64_t> blocksOf(func::FuncOp fn, MeshAttr mesh, const Cone &cone) {
  std::optional<Axes> shared;
  for (auto [arg, dim] : cone.params()) {
    Axes axes = withoutTrivialAxes(mesh, argLayout(fn, arg)).dims[dim];
    if (axes.empty())
      continue;
    if (shared && *shared != axes)
      return std::nullopt;
    shared = axes;
  }
  return shared ? mesh.span(*shared) : 1;
}

void interleave(func::FuncOp fn, MeshAttr mesh, SplitOp split) {
  Cone cone(fn);
  cone.setRoot(split->getOpOperand(0));
  if (!cone.add(split.getInput(), split.getDim()) || !cone.closed() || cone.params().empty())
    return;
  // A param has one stored order: one already stored otherwise (an
  // interleaved or uneven pipeline's layers) keeps it, and the partitioner
  // moves the pieces.
  if (llvm::any_of(cone.params(), [&](auto param) {
        return fn.getArgAttr(param.first, attr::interleave) ||
               fn.getArgAttr(param.first, attr::stageLayers);
      }))
    return;
  std::optional<int64_t> blocks = blocksOf(fn, mesh, cone);
  if (!blocks || *blocks == 1)
    return;
  SmallVector<int64_t> pieces;
  for (Value piece : split.getResults()) {
    int64_t size = cast<RankedTensorType>(piece.getType()).getDimSize(split.getDim());
    if (size % *blocks)
      return; // pieces that do not split n ways: the partitioner gathers
    pieces.push_back(size);
  }
  OpBuilder b(fn.getContext());
  for (auto [arg, dim] : cone.params()) {
    SmallVector<int64_t> spec{dim, *blocks};
    spec.append(pieces);
    fn.setArgAttr(arg, attr::interleave, b.getDenseI64ArrayAttr(spec));
  }
  split.setInterleave(*blocks);
}

struct InterleaveSplits : dtl::impl::InterleaveSplitsBase<InterleaveSplits> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MeshAttr mesh = getMesh(module);
    if (!mesh)
      return;
    for (auto fn : module.getOps<func::FuncOp>()) {
      SmallVector<SplitOp> splits;
      fn.walk([&](SplitOp split) {
        if (split.getInterleave() == 1)
          splits.push_back(split);
      });
      for (SplitOp split : splits)
        interleave(fn, mesh, split);
    }
  }
};

} // namespace
