//===- DtlDialect.cpp - registration and the contract's verifiers ---------===//

#include "dialects/dtl/Contract.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"

using namespace mlir;
using namespace dtl;

#include "dialects/dtl/DtlDialect.cpp.inc"

void DtlDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/dtl/DtlOps.cpp.inc"
      >();
  registerAttributes();
}

/// A sharding of `type`: one axis list per dimension, each axis of the mesh
/// used once.
static LogicalResult verifySharding(function_ref<InFlightDiagnostic()> emitError,
                                    ShardingAttr sharding, Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return emitError() << "only tensors have a sharding";
  if ((int64_t)sharding.getDims().size() != tensor.getRank())
    return emitError() << "the sharding has " << sharding.getDims().size()
                       << " dimensions, but the tensor has " << tensor.getRank();
  llvm::SmallDenseSet<int16_t> used;
  for (DenseI16ArrayAttr axes : sharding.getDims())
    for (int16_t a : axes.asArrayRef())
      if (a < 0 || !used.insert(a).second)
        return emitError() << "a mesh axis splits two dimensions (or is negative)";
  return success();
}

/// A sharding attached anywhere names the module's mesh grid and its axes.
static LogicalResult verifyMeshReference(function_ref<InFlightDiagnostic()> emitError,
                                         Operation *op, ShardingAttr sharding) {
  auto module = op->getParentOfType<ModuleOp>();
  MeshAttr mesh = module ? getMesh(module) : MeshAttr();
  if (!mesh)
    return success(); // checked once the module is whole
  if (sharding.getGrid() != mesh.getGrid())
    return emitError() << "the sharding refers to " << sharding.getGrid()
                       << ", not the mesh's grid " << mesh.getGrid();
  auto inRange = [&](int16_t a) { return a < (int16_t)mesh.getSizes().size(); };
  for (DenseI16ArrayAttr axes : sharding.getDims())
    if (!llvm::all_of(axes.asArrayRef(), inRange))
      return emitError() << "the sharding uses an axis the mesh does not have";
  if (!llvm::all_of(sharding.getPartial().asArrayRef(), inRange))
    return emitError() << "the sharding uses an axis the mesh does not have";
  return success();
}

LogicalResult DtlDialect::verifyOperationAttribute(Operation *op, NamedAttribute named) {
  StringRef name = named.getName().getValue();
  Attribute value = named.getValue();
  auto error = [&]() { return op->emitError() << "'" << name << "' "; };
  if (name == attr::model || name == attr::mesh || name == attr::optimizer || name == attr::train ||
      name == attr::target) {
    auto module = dyn_cast<ModuleOp>(op);
    if (!module)
      return error() << "belongs on the module";
    if (name == attr::model) {
      if (!isa<FlatSymbolRefAttr>(value))
        return error() << "must name the model's function";
    } else if (name == attr::mesh) {
      auto mesh = dyn_cast<MeshAttr>(value);
      if (!mesh)
        return error() << "must be a #dtl.mesh";
      auto grid = module.lookupSymbol<shard::GridOp>(mesh.getGrid().getValue());
      if (!grid || grid.getShape() != mesh.getSizes())
        return error() << "must name a shard.grid of the mesh's shape";
    } else if (name == attr::optimizer && !isa<OptimizerAttr>(value)) {
      return error() << "must be a #dtl.optimizer";
    } else if (name == attr::train && !isa<TrainAttr>(value)) {
      return error() << "must be a #dtl.train";
    } else if (name == attr::target && !isa<TargetAttr>(value)) {
      return error() << "must be a #dtl.target";
    }
    return success();
  }
  if (name == attr::shardings || name == attr::place) {
    auto list = dyn_cast<ArrayAttr>(value);
    if (!list || list.size() != op->getNumResults())
      return error() << "needs one entry per result";
    for (auto [entry, result] : llvm::zip(list, op->getResults())) {
      if (name == attr::place) {
        if (!isa<PlaceAttr>(entry))
          return error() << "entries must be #dtl.place";
        continue;
      }
      auto sharding = dyn_cast<ShardingAttr>(entry);
      if (!sharding)
        return error() << "entries must be #dtl.sharding";
      if (failed(verifySharding(error, sharding, result.getType())) ||
          failed(verifyMeshReference(error, op, sharding)))
        return failure();
    }
    return success();
  }
  if (name == attr::argShardings) {
    auto list = dyn_cast<ArrayAttr>(value);
    if (!list || !llvm::all_of(list, llvm::IsaPred<ShardingAttr>))
      return error() << "must be a list of #dtl.sharding";
    return success();
  }
  if (name == attr::loopShardings) {
    auto list = dyn_cast<ArrayAttr>(value);
    if (!list || !llvm::all_of(list, llvm::IsaPred<DenseI16ArrayAttr>))
      return error() << "must be a list of mesh axes (array<i16: ...>) per loop";
    return success();
  }
  if (name == attr::arenaBytes) {
    auto bytes = dyn_cast<IntegerAttr>(value);
    if (!isa<func::FuncOp>(op) || !bytes || bytes.getInt() < 0)
      return error() << "is a function's arena size in bytes";
    return success();
  }
  if (name == attr::slot) {
    auto slot = dyn_cast<IntegerAttr>(value);
    if (!isa<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllGatherOp, shard::AllToAllOp,
             shard::SendOp, shard::RecvOp>(op) ||
        !slot || slot.getInt() < 0)
      return error() << "numbers a communicating shard collective or transfer";
    return success();
  }
  if (name == attr::microBatch || name == attr::virtualStage || name == attr::firstLayer) {
    auto index = dyn_cast<IntegerAttr>(value);
    if (!isa<RepeatOp>(op) || !index || index.getInt() < 0)
      return error() << (name == attr::microBatch ? "numbers the micro-batch a pipeline stage's "
                                                    "repeat runs for"
                         : name == attr::virtualStage
                             ? "numbers the virtual stage (chunk) a pipeline stage's repeat is"
                             : "numbers the model's layer a pipeline stage's repeat starts at");
    return success();
  }
  if (name == attr::recomputed) {
    if (!isa<UnitAttr>(value))
      return error() << "is a unit attribute";
    return success();
  }
  if (name == attr::inPlace) {
    if (!isa<AdamwUpdateOp, SgdUpdateOp>(op) || !isa<UnitAttr>(value))
      return error() << "marks an optimizer update";
    return success();
  }
  return error() << "is not an attribute of the dtl dialect";
}

/// The attributes of a function argument or result.
static LogicalResult verifyValueAttribute(Operation *op, Type type, NamedAttribute named,
                                          bool isArgument) {
  StringRef name = named.getName().getValue();
  Attribute value = named.getValue();
  auto error = [&]() {
    return op->emitError() << "'" << name << "' on a function "
                           << (isArgument ? "argument" : "result") << " ";
  };
  if (name == attr::role) {
    auto role = dyn_cast<RoleAttr>(value);
    if (!role)
      return error() << "must be a #dtl.role";
    bool argumentRole = llvm::is_contained(
        {Role::param, Role::input, Role::opt_state, Role::lr, Role::step}, role.getValue());
    bool resultRole = llvm::is_contained(
        {Role::loss, Role::grad_norm, Role::grad, Role::correct, Role::param, Role::opt_state},
        role.getValue());
    if (isArgument ? !argumentRole : !resultRole)
      return error() << "cannot be " << stringifyRole(role.getValue());
    return success();
  }
  if (name == attr::name) {
    if (!isa<StringAttr>(value))
      return error() << "must be a string";
    return success();
  }
  if (name == attr::init) {
    if (!isa<InitAttr>(value) || !isArgument)
      return error() << "must be a #dtl.init on an argument";
    return success();
  }
  if (name == attr::decay) {
    if (!isa<BoolAttr>(value) || !isArgument)
      return error() << "must be a boolean on an argument";
    return success();
  }
  if (name == attr::sharding) {
    auto sharding = dyn_cast<ShardingAttr>(value);
    if (!sharding)
      return error() << "must be a #dtl.sharding";
    return failure(failed(verifySharding(error, sharding, type)) ||
                   failed(verifyMeshReference(error, op, sharding)));
  }
  if (name == attr::interleave) {
    // [dim, blocks, piece sizes...]; the sizes add up to the dimension's
    // global size, which a partitioned argument's type no longer shows.
    auto order = dyn_cast<DenseI64ArrayAttr>(value);
    auto tensor = dyn_cast<RankedTensorType>(type);
    ArrayRef<int64_t> v = order ? order.asArrayRef() : ArrayRef<int64_t>();
    if (!tensor || v.size() < 3 || v[0] < 0 || v[0] >= tensor.getRank() || v[1] < 2 ||
        llvm::any_of(v.drop_front(2), [&](int64_t piece) { return piece < 1 || piece % v[1]; }))
      return error() << "must be [dim, blocks >= 2, piece sizes divisible by blocks...] on a "
                        "tensor with that dim";
    return success();
  }
  if (name == attr::stageLayers) {
    auto layers = dyn_cast<DenseI64ArrayAttr>(value);
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!layers || layers.size() < 2 || !tensor || tensor.getRank() < 1 ||
        llvm::any_of(layers.asArrayRef(), [](int64_t n) { return n < 1; }))
      return error() << "must be [layers per stage...] (at least two stages of at least one "
                        "layer) on a tensor";
    return success();
  }
  if (name == attr::bound) {
    auto bound = dyn_cast<IntegerAttr>(value);
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!bound || bound.getInt() < 1 || !isArgument || !tensor ||
        !tensor.getElementType().isInteger(32))
      return error() << "must be a positive integer on an i32 argument";
    return success();
  }
  if (name == attr::ignorable) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!isa<UnitAttr>(value) || !isArgument || !tensor || !tensor.getElementType().isInteger(32))
      return error() << "must be a unit attribute on an i32 argument";
    return success();
  }
  if (name == attr::globalType) {
    if (!isa<TypeAttr>(value))
      return error() << "must be a type";
    return success();
  }
  return error() << "is not an attribute of the dtl dialect";
}

LogicalResult DtlDialect::verifyRegionArgAttribute(Operation *op, unsigned region, unsigned arg,
                                                   NamedAttribute named) {
  Type type = op->getRegion(region).front().getArgument(arg).getType();
  return verifyValueAttribute(op, type, named, /*isArgument=*/true);
}

LogicalResult DtlDialect::verifyRegionResultAttribute(Operation *op, unsigned region,
                                                      unsigned result, NamedAttribute named) {
  auto fn = dyn_cast<func::FuncOp>(op);
  if (!fn)
    return op->emitError("dtl result attributes belong on functions");
  return verifyValueAttribute(op, fn.getResultTypes()[result], named, /*isArgument=*/false);
}
