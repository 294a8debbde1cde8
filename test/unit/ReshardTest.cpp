//===- ReshardTest.cpp - every change of layout, run and counted ---------===//
//
// A property test of dtl-partition's resharding: for every pair of layouts
// of a 2-D and a 3-D tensor on [2, 2] and [2, 2, 2] meshes, a function that
// takes the value in one and returns it in the other is partitioned, and its
// collectives are run here on every rank of a simulated mesh. Each rank must
// end with its block of the value in the target layout, and the collectives
// that communicate (all but local slices) must be as few as possible: one
// for each dimension that loses a split it cannot keep (one collective takes
// splits off one dimension: an all-gather, or an all-to-all that moves them
// to another). Then the same from a pending partial sum (a matmul's product
// whose contraction is split): one more collective, the reduction (an
// all-reduce, or a reduce-scatter that also adds a split).
//
//===----------------------------------------------------------------------===//

#include "dialects/dtl/Contract.h"
#include "passes/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <string>

using namespace mlir;

namespace {

using Axes = std::vector<int>;
using Dims = std::vector<Axes>; // mesh axes per tensor dimension, major first

/// A dense tensor of doubles (row-major).
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> data;
  int64_t stride(size_t d) const {
    return std::accumulate(shape.begin() + d + 1, shape.end(), int64_t(1), std::multiplies<>());
  }
  /// Piece `index` of `count` equal pieces along `d`.
  Tensor piece(size_t d, int64_t index, int64_t count) const {
    Tensor out{shape, {}};
    out.shape[d] /= count;
    int64_t outer =
        std::accumulate(shape.begin(), shape.begin() + d, int64_t(1), std::multiplies<>());
    int64_t inner = out.shape[d] * stride(d);
    for (int64_t o = 0; o < outer; ++o) {
      auto from = data.begin() + o * shape[d] * stride(d) + index * inner;
      out.data.insert(out.data.end(), from, from + inner);
    }
    return out;
  }
  /// `parts` concatenated along `d`.
  static Tensor concat(const std::vector<Tensor> &parts, size_t d) {
    Tensor out{parts[0].shape, {}};
    out.shape[d] *= parts.size();
    int64_t outer =
        std::accumulate(out.shape.begin(), out.shape.begin() + d, int64_t(1), std::multiplies<>());
    for (int64_t o = 0; o < outer; ++o)
      for (const Tensor &p : parts) {
        int64_t inner = p.shape[d] * p.stride(d);
        auto from = p.data.begin() + o * inner;
        out.data.insert(out.data.end(), from, from + inner);
      }
    return out;
  }
};

struct Mesh {
  std::vector<int> sizes;
  int ranks() const { return std::accumulate(sizes.begin(), sizes.end(), 1, std::multiplies<>()); }
  /// Coordinates of `rank`, the last axis fastest.
  std::vector<int> coords(int rank) const {
    std::vector<int> c(sizes.size());
    for (size_t a = sizes.size(); a-- > 0;) {
      c[a] = rank % sizes[a];
      rank /= sizes[a];
    }
    return c;
  }
  /// The rank's index along `axes` (the first most significant) and their span.
  std::pair<int, int> along(const std::vector<int> &c, const Axes &axes) const {
    int index = 0, span = 1;
    for (int a : axes) {
      index = index * sizes[a] + c[a];
      span *= sizes[a];
    }
    return {index, span};
  }
  /// The ranks of `rank`'s group along `axes`, in index order.
  std::vector<int> group(int rank, const Axes &axes) const {
    std::vector<int> members(along(coords(rank), axes).second);
    for (int r = 0; r < ranks(); ++r) {
      std::vector<int> c = coords(r), mine = coords(rank);
      bool same = true;
      for (size_t a = 0; a < sizes.size(); ++a)
        if (std::find(axes.begin(), axes.end(), int(a)) == axes.end() && c[a] != mine[a])
          same = false;
      if (same)
        members[along(c, axes).first] = r;
    }
    return members;
  }
  Tensor block(const Tensor &global, const Dims &dims, int rank) const {
    Tensor t = global;
    for (size_t d = 0; d < dims.size(); ++d) {
      auto [index, span] = along(coords(rank), dims[d]);
      t = t.piece(d, index, span);
    }
    return t;
  }
};

std::string shardingOf(const Dims &dims) {
  std::string s = "#dtl.sharding<@grid, [";
  for (size_t d = 0; d < dims.size(); ++d) {
    s += d ? ", [" : "[";
    for (size_t i = 0; i < dims[d].size(); ++i)
      s += (i ? ", " : "") + std::to_string(dims[d][i]);
    s += "]";
  }
  return s + "]>";
}

/// Every layout: each axis on no dimension or on one, in every order.
std::vector<Dims> layouts(int axes, int rank) {
  std::vector<Dims> all{Dims(rank)};
  for (int a = 0; a < axes; ++a) {
    std::vector<Dims> next;
    for (const Dims &dims : all) {
      next.push_back(dims);
      for (int d = 0; d < rank; ++d)
        for (size_t at = 0; at <= dims[d].size(); ++at) {
          Dims placed = dims;
          placed[d].insert(placed[d].begin() + at, a);
          next.push_back(placed);
        }
    }
    all = next;
  }
  return all;
}

/// Dimensions that lose a split they cannot keep: an axis keeps its place
/// only on the same dimension behind the same axes.
int fewestCollectives(const Dims &from, const Dims &to) {
  int count = 0;
  for (size_t d = 0; d < from.size(); ++d) {
    size_t kept = 0;
    while (kept < from[d].size() && kept < to[d].size() && from[d][kept] == to[d][kept])
      ++kept;
    count += kept < from[d].size();
  }
  return count;
}

struct Outcome {
  std::string error;
  int communicating = 0;
};

std::string tensorType(const std::vector<int64_t> &shape) {
  std::string type = "tensor<";
  for (int64_t s : shape)
    type += std::to_string(s) + "x";
  return type + "f32>";
}

Tensor iota(const std::vector<int64_t> &shape, double start) {
  Tensor t{shape, std::vector<double>(std::accumulate(shape.begin(), shape.end(), int64_t(1),
                                                      std::multiplies<>()))};
  std::iota(t.data.begin(), t.data.end(), start);
  return t;
}

Tensor matmul(const Tensor &a, const Tensor &b) {
  int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
  Tensor c{{m, n}, std::vector<double>(m * n, 0.0)};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j)
        c.data[i * n + j] += a.data[i * k + p] * b.data[p * n + j];
  return c;
}

Tensor sum(const std::vector<Tensor> &parts) {
  Tensor out = parts[0];
  for (size_t i = 1; i < parts.size(); ++i)
    for (size_t e = 0; e < out.data.size(); ++e)
      out.data[e] += parts[i].data[e];
  return out;
}

/// One argument of the function under test: its global value and layout.
struct Argument {
  Tensor global;
  Dims dims;
};

/// Partitions `body` (a function of `args` returning one value in layout
/// `to`), runs it on every rank and checks the result against `expected`.
Outcome run(MLIRContext &ctx, const Mesh &mesh, const std::vector<Argument> &args,
            const std::string &body, const Tensor &expected, const Dims &to) {
  std::string resultType = tensorType(expected.shape);
  std::string meshSizes, names;
  for (size_t a = 0; a < mesh.sizes.size(); ++a) {
    meshSizes += (a ? "x" : "") + std::to_string(mesh.sizes[a]);
    names += (a ? ", " : "") + std::string("\"a") + std::to_string(a) +
             "\" = " + std::to_string(mesh.sizes[a]);
  }
  std::string params;
  for (size_t i = 0; i < args.size(); ++i)
    params += (i ? ", %a" : "%a") + std::to_string(i) + ": " + tensorType(args[i].global.shape) +
              " {dtl.sharding = " + shardingOf(args[i].dims) + "}";
  std::string source = "module attributes {dtl.mesh = #dtl.mesh<@grid, [" + names +
                       "]>} {\n shard.grid @grid(shape = " + meshSizes + ")\n" + " func.func @f(" +
                       params + ") -> (" + resultType + " {dtl.sharding = " + shardingOf(to) +
                       "}) {\n" + body + "\n }\n}\n";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  if (!module)
    return {"does not parse:\n" + source};
  PassManager pm(&ctx);
  pm.addPass(dtl::createPropagateSharding());
  pm.addPass(dtl::createPartition());
  if (failed(pm.run(*module)))
    return {"does not partition"};

  auto fn = *module->getOps<func::FuncOp>().begin();
  std::map<void *, std::vector<Tensor>> values; // per rank
  for (auto [i, arg] : llvm::enumerate(args)) {
    std::vector<Tensor> &input = values[fn.getArgument(i).getAsOpaquePointer()];
    for (int r = 0; r < mesh.ranks(); ++r)
      input.push_back(mesh.block(arg.global, arg.dims, r));
  }
  Outcome outcome;
  auto axesOf = [](ArrayRef<int16_t> axes) { return Axes(axes.begin(), axes.end()); };
  for (Operation &op : fn.getBody().front()) {
    auto in = [&]() -> std::vector<Tensor> & {
      return values[op.getOperand(0).getAsOpaquePointer()];
    };
    std::vector<Tensor> out(mesh.ranks());
    if (auto slice = dyn_cast<shard::AllSliceOp>(op)) {
      Axes axes = axesOf(slice.getGridAxes());
      for (int r = 0; r < mesh.ranks(); ++r) {
        auto [index, span] = mesh.along(mesh.coords(r), axes);
        out[r] = in()[r].piece(slice.getSliceAxis().getZExtValue(), index, span);
      }
    } else if (auto gather = dyn_cast<shard::AllGatherOp>(op)) {
      ++outcome.communicating;
      for (int r = 0; r < mesh.ranks(); ++r) {
        std::vector<Tensor> parts;
        for (int member : mesh.group(r, axesOf(gather.getGridAxes())))
          parts.push_back(in()[member]);
        out[r] = Tensor::concat(parts, gather.getGatherAxis().getZExtValue());
      }
    } else if (auto product = dyn_cast<dtl::MatmulOp>(op)) {
      for (int r = 0; r < mesh.ranks(); ++r)
        out[r] = matmul(in()[r], values[product.getRhs().getAsOpaquePointer()][r]);
    } else if (auto reduce = dyn_cast<shard::AllReduceOp>(op)) {
      ++outcome.communicating;
      for (int r = 0; r < mesh.ranks(); ++r) {
        std::vector<Tensor> parts;
        for (int member : mesh.group(r, axesOf(reduce.getGridAxes())))
          parts.push_back(in()[member]);
        out[r] = sum(parts);
      }
    } else if (auto scatter = dyn_cast<shard::ReduceScatterOp>(op)) {
      ++outcome.communicating;
      for (int r = 0; r < mesh.ranks(); ++r) {
        std::vector<int> members = mesh.group(r, axesOf(scatter.getGridAxes()));
        std::vector<Tensor> parts;
        for (int member : members)
          parts.push_back(in()[member]);
        int mine = std::find(members.begin(), members.end(), r) - members.begin();
        out[r] = sum(parts).piece(scatter.getScatterAxis().getZExtValue(), mine, members.size());
      }
    } else if (auto exchange = dyn_cast<shard::AllToAllOp>(op)) {
      ++outcome.communicating;
      size_t split = exchange.getSplitAxis().getZExtValue(),
             concat = exchange.getConcatAxis().getZExtValue();
      for (int r = 0; r < mesh.ranks(); ++r) {
        std::vector<int> members = mesh.group(r, axesOf(exchange.getGridAxes()));
        int mine = std::find(members.begin(), members.end(), r) - members.begin();
        std::vector<Tensor> parts;
        for (int member : members)
          parts.push_back(in()[member].piece(split, mine, members.size()));
        out[r] = Tensor::concat(parts, concat);
      }
    } else if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      std::vector<Tensor> &result = values[ret.getOperand(0).getAsOpaquePointer()];
      for (int r = 0; r < mesh.ranks(); ++r)
        if (result[r].data != mesh.block(expected, to, r).data) {
          outcome.error = "rank " + std::to_string(r) + " holds the wrong block";
          return outcome;
        }
      return outcome;
    } else {
      outcome.error = "unexpected op " + op.getName().getStringRef().str();
      return outcome;
    }
    values[op.getResult(0).getAsOpaquePointer()] = out;
  }
  outcome.error = "no return";
  return outcome;
}

Outcome reshard(MLIRContext &ctx, const Mesh &mesh, const std::vector<int64_t> &shape,
                const Dims &from, const Dims &to) {
  Tensor value = iota(shape, 0);
  return run(ctx, mesh, {{value, from}}, "  return %a0 : " + tensorType(shape), value, to);
}

/// From the product a @ b whose contraction is split over `partial` (each
/// rank holds a partial sum), the rows and columns split as `from` says.
Outcome reshardPartialSum(MLIRContext &ctx, const Mesh &mesh, const Dims &from, const Axes &partial,
                          const Dims &to) {
  Tensor a = iota({8, 8}, 1), b = iota({8, 8}, -20);
  std::string t = tensorType({8, 8});
  return run(ctx, mesh, {{a, {from[0], partial}}, {b, {partial, from[1]}}},
             "  %p = dtl.matmul %a0, %a1 : " + t + ", " + t + " -> " + t + "\n  return %p : " + t,
             matmul(a, b), to);
}

struct Case {
  std::vector<int> mesh;
  std::vector<int64_t> shape;
};

class EveryReshard : public ::testing::TestWithParam<Case> {};

TEST_P(EveryReshard, IsRightAndUsesTheFewestCollectives) {
  MLIRContext ctx;
  ctx.loadDialect<dtl::DtlDialect, func::FuncDialect, shard::ShardDialect>();
  Mesh mesh{GetParam().mesh};
  const std::vector<int64_t> &shape = GetParam().shape;
  std::vector<Dims> all = layouts(mesh.sizes.size(), shape.size());
  int pairs = 0, wrong = 0, excess = 0;
  for (const Dims &from : all)
    for (const Dims &to : all) {
      ++pairs;
      Outcome outcome = reshard(ctx, mesh, shape, from, to);
      int fewest = fewestCollectives(from, to);
      if (!outcome.error.empty()) {
        ADD_FAILURE() << shardingOf(from) << " -> " << shardingOf(to) << ": " << outcome.error;
        ++wrong;
      } else if (outcome.communicating > fewest) {
        ADD_FAILURE() << shardingOf(from) << " -> " << shardingOf(to) << ": "
                      << outcome.communicating << " collectives where " << fewest << " would do";
        ++excess;
      }
      if (wrong + excess > 20)
        return; // enough to see the pattern
    }
  RecordProperty("pairs", pairs);
}

/// The partial sums come from a matrix product: 2-D.
class EveryReshardOfAPartialSum : public ::testing::TestWithParam<Case> {};

TEST_P(EveryReshardOfAPartialSum, IsRightWithOneReductionMore) {
  MLIRContext ctx;
  ctx.loadDialect<dtl::DtlDialect, func::FuncDialect, shard::ShardDialect>();
  Mesh mesh{GetParam().mesh};
  std::vector<Dims> all = layouts(mesh.sizes.size(), 2);
  int problems = 0, checked = 0;
  for (const Dims &from : all) {
    // Every non-empty ordered set of the axes `from` leaves free.
    Axes free;
    for (int a = 0; a < int(mesh.sizes.size()); ++a)
      if (std::none_of(from.begin(), from.end(),
                       [&](const Axes &d) { return std::find(d.begin(), d.end(), a) != d.end(); }))
        free.push_back(a);
    for (const Dims &pending : layouts(mesh.sizes.size(), 1)) {
      const Axes &partial = pending[0];
      if (partial.empty() || std::any_of(partial.begin(), partial.end(), [&](int a) {
            return std::find(free.begin(), free.end(), a) == free.end();
          }))
        continue;
      for (const Dims &to : all) {
        Outcome outcome = reshardPartialSum(ctx, mesh, from, partial, to);
        ++checked;
        int fewest = fewestCollectives(from, to) + 1;
        std::string what =
            shardingOf(from) + " partial over " + shardingOf({partial}) + " -> " + shardingOf(to);
        if (!outcome.error.empty()) {
          ADD_FAILURE() << what << ": " << outcome.error;
          ++problems;
        } else if (outcome.communicating > fewest) {
          ADD_FAILURE() << what << ": " << outcome.communicating << " collectives where " << fewest
                        << " would do";
          ++problems;
        }
        if (problems > 20)
          return;
      }
    }
  }
  RecordProperty("cases", checked);
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Meshes, EveryReshardOfAPartialSum,
                         ::testing::Values(Case{{2, 2}, {8, 8}}, Case{{2, 2, 2}, {8, 8}}));

INSTANTIATE_TEST_SUITE_P(Meshes, EveryReshard,
                         ::testing::Values(Case{{2, 2}, {8, 8}}, Case{{2, 2}, {8, 8, 8}},
                                           Case{{2, 2, 2}, {8, 8}}, Case{{2, 2, 2}, {8, 8, 8}}));

} // namespace
