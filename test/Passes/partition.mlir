// RUN: dtl-opt %s --dtl-propagate-sharding --dtl-partition --split-input-file | FileCheck %s

// Data parallel: the batch dimension is split over dp, the weight is
// replicated. The weight gradient contracts the batch dimension, so each rank
// holds a partial sum: the partitioner all-reduces it over dp because the
// result must be replicated, not because anything says "data parallel".

// CHECK-LABEL: func.func @dp
// CHECK-SAME: %arg0: tensor<2x3xf32> {dtl.global_type = tensor<4x3xf32>
// CHECK-SAME: %arg1: tensor<2x5xf32> {dtl.global_type = tensor<4x5xf32>
// CHECK:      %[[G:.*]] = dtl.matmul %arg0, %arg1 {transpose_lhs} : tensor<2x3xf32>, tensor<2x5xf32> -> tensor<3x5xf32>
// CHECK-NEXT: %[[R:.*]] = shard.all_reduce %[[G]] on @grid grid_axes = [0] : tensor<3x5xf32> -> tensor<3x5xf32>
// CHECK-NEXT: return %[[R]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @dp(%x: tensor<4x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                %dy: tensor<4x5xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> tensor<3x5xf32> {
    %0 = dtl.matmul %x, %dy {transpose_lhs} : tensor<4x3xf32>, tensor<4x5xf32> -> tensor<3x5xf32>
    return %0 : tensor<3x5xf32>
  }
}

// -----

// Megatron MLP on tp: w1 split by columns, w2 by rows. The activations
// between the matmuls stay split (no collective); the second matmul
// contracts the split dimension and needs the one all-reduce.

// CHECK-LABEL: func.func @megatron
// CHECK:      %[[H:.*]] = dtl.matmul %arg0, %arg1 : tensor<4x3xf32>, tensor<3x4xf32> -> tensor<4x4xf32>
// CHECK-NEXT: %[[A:.*]] = dtl.relu %[[H]] : tensor<4x4xf32>
// CHECK-NEXT: %[[O:.*]] = dtl.matmul %[[A]], %arg2 : tensor<4x4xf32>, tensor<4x3xf32> -> tensor<4x3xf32>
// CHECK-NEXT: %[[R:.*]] = shard.all_reduce %[[O]] on @grid grid_axes = [0]
// CHECK-NOT:  shard.
// CHECK:      return %[[R]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @megatron(%x: tensor<4x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[], []]>},
                      %w1: tensor<3x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0]]>},
                      %w2: tensor<8x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> tensor<4x3xf32> {
    %0 = dtl.matmul %x, %w1 : tensor<4x3xf32>, tensor<3x8xf32> -> tensor<4x8xf32>
    %1 = dtl.relu %0 : tensor<4x8xf32>
    %2 = dtl.matmul %1, %w2 : tensor<4x8xf32>, tensor<8x3xf32> -> tensor<4x3xf32>
    return %2 : tensor<4x3xf32>
  }
}

// -----

// A replicated operand meeting a split one is sliced locally (no
// communication); a split value returned replicated is all-gathered.

// CHECK-LABEL: func.func @reshard
// CHECK:      %[[S:.*]] = shard.all_slice %arg1 on @grid grid_axes = [0] slice_axis = 0 : tensor<4x3xf32> -> tensor<2x3xf32>
// CHECK:      %[[SUM:.*]] = dtl.add %arg0, %[[S]] : tensor<2x3xf32>
// CHECK:      %[[G:.*]] = shard.all_gather %[[SUM]] on @grid grid_axes = [0] gather_axis = 0 : tensor<2x3xf32> -> tensor<4x3xf32>
// CHECK:      return %[[G]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @reshard(%x: tensor<4x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                     %c: tensor<4x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[], []]>})
      -> tensor<4x3xf32> {
    %0 = dtl.add %x, %c : tensor<4x3xf32>
    return %0 : tensor<4x3xf32>
  }
}

// -----

// Partial sums flow through linear ops (a scale) and are reduced once, at the
// first op that needs the full value.

// CHECK-LABEL: func.func @partial
// CHECK:      %[[SUM:.*]] = dtl.reduce_sum %arg0 dims [0] : tensor<2xf32> -> tensor<f32>
// CHECK:      %[[SCALED:.*]] = dtl.mul %[[SUM]], %{{.*}} : tensor<f32>
// CHECK-NEXT: %[[R:.*]] = shard.all_reduce %[[SCALED]]
// CHECK-NEXT: %[[E:.*]] = dtl.exp %[[R]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @partial(%x: tensor<4xf32> {dtl.sharding = #dtl.sharding<@grid, [[0]]>}) -> tensor<f32> {
    %0 = dtl.reduce_sum %x dims [0] : tensor<4xf32> -> tensor<f32>
    %c = dtl.constant 0.25 : tensor<f32>
    %1 = dtl.mul %0, %c : tensor<f32>
    %2 = dtl.exp %1 : tensor<f32>
    return %2 : tensor<f32>
  }
}

// -----

// The row-parallel matmul of ../shared/design/upstream-shard-crash.mlir, on
// which upstream `sharding-propagation{traversal=forward}` + `shard-partition`
// (MLIR 22.1.8) segfault: dtl's own propagation and partitioner (which use
// only the shard dialect's grid and collective ops) give a local matmul over
// each rank's quarter of the contraction and one all-reduce.

// CHECK-LABEL: func.func @rowpar
// CHECK-SAME: %arg0: tensor<8x4xf32>
// CHECK-SAME: %arg1: tensor<4x32xf32>
// CHECK:      %[[Y:.*]] = dtl.matmul %arg0, %arg1 : tensor<8x4xf32>, tensor<4x32xf32> -> tensor<8x32xf32>
// CHECK-NEXT: %[[R:.*]] = shard.all_reduce %[[Y]] on @g grid_axes = [0] : tensor<8x32xf32> -> tensor<8x32xf32>
// CHECK-NEXT: return %[[R]]
module attributes {dtl.mesh = #dtl.mesh<@g, ["tp" = 4]>} {
  shard.grid @g(shape = 4)
  func.func @rowpar(%x: tensor<8x16xf32> {dtl.sharding = #dtl.sharding<@g, [[], [0]]>},
                    %w: tensor<16x32xf32> {dtl.sharding = #dtl.sharding<@g, [[0], []]>})
      -> tensor<8x32xf32> {
    %y = dtl.matmul %x, %w : tensor<8x16xf32>, tensor<16x32xf32> -> tensor<8x32xf32>
    return %y : tensor<8x32xf32>
  }
}

// -----

// ZeRO-2's gradient: a partial sum over dp constrained to be split over dp
// becomes one reduce-scatter, shared by both consumers; the all-reduced
// value is never formed.

// CHECK-LABEL: func.func @reduce_scatter
// CHECK:      %[[G:.*]] = dtl.matmul %arg0, %arg1 {transpose_lhs} : tensor<4x8xf32>, tensor<4x6xf32> -> tensor<8x6xf32>
// CHECK-NEXT: %[[RS:.*]] = shard.reduce_scatter %[[G]] on @grid grid_axes = [0] scatter_axis = 0 : tensor<8x6xf32> -> tensor<4x6xf32>
// CHECK-NOT:  shard.all_reduce %[[G]]
// CHECK:      dtl.mul %[[RS]], %[[RS]] : tensor<4x6xf32>
// CHECK:      dtl.neg %[[RS]] : tensor<4x6xf32>
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @reduce_scatter(%x: tensor<8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                            %dy: tensor<8x6xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<8x6xf32>, tensor<8x6xf32>) {
    %g = dtl.matmul %x, %dy {transpose_lhs} : tensor<8x8xf32>, tensor<8x6xf32> -> tensor<8x6xf32>
    %s = dtl.sharding_constraint %g : tensor<8x6xf32> to #dtl.sharding<@grid, [[0], []]>
    %sq = dtl.mul %s, %s : tensor<8x6xf32>
    %n = dtl.neg %s : tensor<8x6xf32>
    return %sq, %n : tensor<8x6xf32>, tensor<8x6xf32>
  }
}

// -----

// Moving a split from one dimension to another on the same axis is one
// all-to-all (not a gather and a slice).

// CHECK-LABEL: func.func @move_split
// CHECK:      %[[A:.*]] = shard.all_to_all %arg0 on @grid grid_axes = [0] split_axis = 0 concat_axis = 1 : tensor<4x2xf32> -> tensor<2x4xf32>
// CHECK-NEXT: return %[[A]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @move_split(%x: tensor<4x4xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0]]>})
      -> (tensor<4x4xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>}) {
    return %x : tensor<4x4xf32>
  }
}

// -----

// ZeRO-1's update: the optimizer state is split over dp, the param and its
// (all-reduced) gradient are replicated. The update runs on each rank's
// slice (local slices, no communication) and the new param is gathered.

// CHECK-LABEL: func.func @zero1_update
// CHECK-DAG:  %[[P:.*]] = shard.all_slice %arg0 on @grid grid_axes = [0] slice_axis = 0 : tensor<8x3xf32> -> tensor<4x3xf32>
// CHECK-DAG:  %[[G:.*]] = shard.all_slice %arg1 on @grid grid_axes = [0] slice_axis = 0 : tensor<8x3xf32> -> tensor<4x3xf32>
// CHECK:      %[[NEW:.*]], %{{.*}} = dtl.sgd_update %[[P]], %[[G]], %arg2, %arg3, %arg3 {{.*}} : tensor<4x3xf32>, tensor<f32>
// CHECK-NEXT: %[[FULL:.*]] = shard.all_gather %[[NEW]] on @grid grid_axes = [0] gather_axis = 0 : tensor<4x3xf32> -> tensor<8x3xf32>
// CHECK:      return %[[FULL]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @zero1_update(%p: tensor<8x3xf32>, %g: tensor<8x3xf32>,
                          %buf: tensor<8x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                          %lr: tensor<f32>)
      -> (tensor<8x3xf32>, tensor<8x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>}) {
    %new, %newbuf = dtl.sgd_update %p, %g, %buf, %lr, %lr {momentum = 0.9 : f64, weight_decay = 0.0 : f64} : tensor<8x3xf32>, tensor<f32>
    return %new, %newbuf : tensor<8x3xf32>, tensor<8x3xf32>
  }
}

// -----

// A norm over each row (sum over dimension 1, then a broadcast back): with
// the rows split over dp, every rank holds whole rows and no collective is
// needed; with the columns split over tp, the row sums are partial and one
// all-reduce of the [rows] vector completes them.

// CHECK-LABEL: func.func @norm_rows_split
// CHECK-NOT:  shard.
// CHECK:      return
// CHECK-LABEL: func.func @norm_columns_split
// CHECK:      %[[S:.*]] = dtl.reduce_sum %{{.*}} dims [1] : tensor<4x3xf32> -> tensor<4xf32>
// CHECK-NEXT: %[[R:.*]] = shard.all_reduce %[[S]] on @grid grid_axes = [1] : tensor<4xf32> -> tensor<4xf32>
// CHECK-NEXT: dtl.broadcast %[[R]] dims [0] : tensor<4xf32> -> tensor<4x3xf32>
// CHECK-NOT:  shard.
// CHECK:      return
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @norm_rows_split(%x: tensor<4x6xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<4x6xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>}) {
    %sq = dtl.mul %x, %x : tensor<4x6xf32>
    %s = dtl.reduce_sum %sq dims [1] : tensor<4x6xf32> -> tensor<4xf32>
    %b = dtl.broadcast %s dims [0] : tensor<4xf32> -> tensor<4x6xf32>
    %r = dtl.sqrt %b : tensor<4x6xf32>
    %n = dtl.div %x, %r : tensor<4x6xf32>
    return %n : tensor<4x6xf32>
  }
  func.func @norm_columns_split(%x: tensor<4x6xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [1]]>})
      -> (tensor<4x6xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [1]]>}) {
    %sq = dtl.mul %x, %x : tensor<4x6xf32>
    %s = dtl.reduce_sum %sq dims [1] : tensor<4x6xf32> -> tensor<4xf32>
    %b = dtl.broadcast %s dims [0] : tensor<4xf32> -> tensor<4x6xf32>
    %r = dtl.sqrt %b : tensor<4x6xf32>
    %n = dtl.div %x, %r : tensor<4x6xf32>
    return %n : tensor<4x6xf32>
  }
}

// -----

// The batch split over both axes of a 2-D mesh: the replicated weight's
// gradient is a partial sum over both, all-reduced over both.

// CHECK-LABEL: func.func @dp_over_both
// CHECK:      %[[G:.*]] = dtl.matmul %arg0, %arg1 {transpose_lhs} : tensor<2x3xf32>, tensor<2x5xf32> -> tensor<3x5xf32>
// CHECK-NEXT: shard.all_reduce %[[G]] on @grid grid_axes = [0, 1] : tensor<3x5xf32> -> tensor<3x5xf32>
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @dp_over_both(%x: tensor<8x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0, 1], []]>},
                          %dy: tensor<8x5xf32> {dtl.sharding = #dtl.sharding<@grid, [[0, 1], []]>})
      -> tensor<3x5xf32> {
    %0 = dtl.matmul %x, %dy {transpose_lhs} : tensor<8x3xf32>, tensor<8x5xf32> -> tensor<3x5xf32>
    return %0 : tensor<3x5xf32>
  }
}

// -----

// So the bias is gathered (its 10 values), not the activation exchanged.
// CHECK-LABEL: func.func @bias_moves
// CHECK:      %[[B:.*]] = shard.all_gather %arg0 on @grid grid_axes = [0] gather_axis = 0 : tensor<5xf32> -> tensor<10xf32>
// CHECK-NEXT: dtl.broadcast %[[B]] dims [1] : tensor<10xf32> -> tensor<128x10xf32>
// CHECK-NOT:  shard.all_to_all
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @bias_moves(%b: tensor<10xf32> {dtl.sharding = #dtl.sharding<@grid, [[0]]>},
                        %h: tensor<256x10xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<256x10xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>}) {
    %bb = dtl.broadcast %b dims [1] : tensor<10xf32> -> tensor<256x10xf32>
    %s = dtl.add %h, %bb : tensor<256x10xf32>
    return %s : tensor<256x10xf32>
  }
}

// -----

// Transformer shapes: the batch split of [B, T, C] survives the reshape to
// [B*T, C] (a merged dimension is split as its leading part), so the weight
// gradient of a batched matmul is a partial sum reduced once over dp; the
// heads split of causal attention over tp needs no collective, and the
// log-sum-exp holds this rank's heads.

// CHECK-LABEL: func.func @transformer
// CHECK-SAME: %arg0: tensor<2x8x16xf32>
// CHECK:      dtl.causal_attention {{.*}} : tensor<2x8x8xf32> -> tensor<2x2x8xf32>
// CHECK:      dtl.reshape {{.*}} : tensor<2x8x16xf32> -> tensor<16x16xf32>
// CHECK:      %[[G:.*]] = dtl.matmul {{.*}} {transpose_lhs} : tensor<16x16xf32>, tensor<16x16xf32> -> tensor<16x16xf32>
// CHECK-NEXT: shard.all_reduce %[[G]] on @grid grid_axes = [0]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @transformer(%x: tensor<4x8x16xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>},
                         %q: tensor<4x8x16xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [], [1]]>})
      -> (tensor<4x8x16xf32>, tensor<16x16xf32>) {
    %out, %lse = dtl.causal_attention %q, %q, %q {head_dim = 4 : i64} : tensor<4x8x16xf32> -> tensor<4x4x8xf32>
    %flat = dtl.reshape %x : tensor<4x8x16xf32> -> tensor<32x16xf32>
    %dw = dtl.matmul %flat, %flat {transpose_lhs} : tensor<32x16xf32>, tensor<32x16xf32> -> tensor<16x16xf32>
    return %out, %dw : tensor<4x8x16xf32>, tensor<16x16xf32>
  }
}

// -----

// A repeat's body is partitioned once: Megatron's all-reduce over tp is in
// the body (once per layer); a stacked result that is a partial sum over dp
// (a weight gradient contracting the split batch) stays partial through the
// loop and is all-reduced once after it, not once per layer.

// CHECK-LABEL: func.func @layers
// CHECK:      %[[R:.*]]:2 = dtl.repeat 2 carry(%arg0 : tensor<2x8xf32>) stacked(%arg1, %arg2 : tensor<2x8x8xf32>, tensor<2x8x8xf32>) -> (tensor<2x8xf32>, tensor<2x8x8xf32>)
// CHECK:      ^bb0(%{{.*}}: index, %{{.*}}: tensor<2x8xf32>, %{{.*}}: tensor<8x8xf32>, %{{.*}}: tensor<8x8xf32>):
// CHECK:      dtl.relu
// CHECK-NEXT: %[[Y:.*]] = dtl.matmul {{.*}} : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
// CHECK-NEXT: %[[S:.*]] = shard.all_reduce %[[Y]] on @grid grid_axes = [1]
// CHECK:      %[[G:.*]] = dtl.matmul {{.*}} {transpose_lhs} : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<8x8xf32>
// CHECK-NEXT: dtl.yield %[[S]], %[[G]]
// CHECK:      shard.all_reduce %[[R]]#1 on @grid grid_axes = [0] : tensor<2x8x8xf32>
// CHECK-NOT:  shard.all_reduce
// CHECK:      return
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @layers(%x: tensor<4x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                    %a: tensor<2x8x16xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [], [1]]>},
                    %b: tensor<2x16x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [1], []]>})
      -> (tensor<4x8xf32>, tensor<2x8x8xf32>) {
    %h, %g = dtl.repeat 2 carry(%x : tensor<4x8xf32>) stacked(%a, %b : tensor<2x8x16xf32>, tensor<2x16x8xf32>) -> (tensor<4x8xf32>, tensor<2x8x8xf32>) {
    ^bb0(%i: index, %xi: tensor<4x8xf32>, %ai: tensor<8x16xf32>, %bi: tensor<16x8xf32>):
      %u = dtl.matmul %xi, %ai : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
      %r = dtl.relu %u : tensor<4x16xf32>
      %y = dtl.matmul %r, %bi : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
      %gram = dtl.matmul %xi, %xi {transpose_lhs} : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
      dtl.yield %y, %gram : tensor<4x8xf32>, tensor<8x8xf32>
    }
    return %h, %g : tensor<4x8xf32>, tensor<2x8x8xf32>
  }
}

// -----

// An accumulating loop's sums keep the layout the body gives them: a weight
// gradient over a batch split over dp stays a partial sum through the loop
// and is all-reduced once after it, not once per micro-batch.

// CHECK-LABEL: func.func @accumulate
// CHECK:      dtl.repeat 2 accumulate stacked(%arg0 : tensor<2x2x3xf32>) -> (tensor<3x3xf32>)
// CHECK-NOT:  shard.
// CHECK:      dtl.yield
// CHECK-NEXT: }
// CHECK-NEXT: shard.all_reduce %{{.*}} on @grid grid_axes = [0]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @accumulate(%x: tensor<2x4x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0], []]>}) -> tensor<3x3xf32> {
    %sum = dtl.repeat 2 accumulate stacked(%x : tensor<2x4x3xf32>) -> (tensor<3x3xf32>) {
    ^bb0(%i: index, %xi: tensor<4x3xf32>):
      %g = dtl.matmul %xi, %xi {transpose_lhs} : tensor<4x3xf32>, tensor<4x3xf32> -> tensor<3x3xf32>
      dtl.yield %g : tensor<3x3xf32>
    }
    return %sum : tensor<3x3xf32>
  }
}

// -----

// A constraint may split a dimension the next op needs whole (the row that
// layernorm and softmax normalise, attention's sequence): the partitioner
// all-gathers the operand for that op, as it would after any other op.
// Where the constraint only sliced a replicated value, the op reads the
// value from before the slice (no collective, and the slice goes).
// Cross-entropy takes its classes split (see @vocab_parallel_cross_entropy).

// CHECK-LABEL: func.func @whole_after_constraint
// CHECK:      %[[H:.*]] = dtl.matmul %arg0, %arg1 : tensor<4x8xf32>, tensor<8x6xf32> -> tensor<4x6xf32>
// CHECK-NEXT: %[[HG:.*]] = shard.all_gather %[[H]] on @grid grid_axes = [1] gather_axis = 1 : tensor<4x6xf32> -> tensor<4x12xf32>
// CHECK-NEXT: %[[N:.*]], %{{.*}}, %{{.*}} = dtl.layernorm %[[HG]], {{.*}} -> tensor<4x12xf32>, tensor<4xf32>
// CHECK-NEXT: %[[S:.*]] = dtl.softmax %[[N]] : tensor<4x12xf32>
// CHECK-NEXT: %[[SS:.*]] = shard.all_slice %[[S]] on @grid grid_axes = [1] slice_axis = 1 : tensor<4x12xf32> -> tensor<4x6xf32>
// CHECK-NEXT: dtl.cross_entropy_partial %[[SS]], %arg3
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @whole_after_constraint(%x: tensor<8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                                    %w: tensor<8x12xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [1]]>},
                                    %g: tensor<12xf32>,
                                    %y: tensor<8xi32> {dtl.sharding = #dtl.sharding<@grid, [[0]]>})
      -> tensor<8xf32> {
    %h = dtl.matmul %x, %w : tensor<8x8xf32>, tensor<8x12xf32> -> tensor<8x12xf32>
    %hc = dtl.sharding_constraint %h : tensor<8x12xf32> to #dtl.sharding<@grid, [[0], [1]]>
    %n:3 = dtl.layernorm %hc, %g, %g {eps = 1.0e-5 : f64} : tensor<8x12xf32>, tensor<12xf32> -> tensor<8x12xf32>, tensor<8xf32>
    %nc = dtl.sharding_constraint %n#0 : tensor<8x12xf32> to #dtl.sharding<@grid, [[0], [1]]>
    %s = dtl.softmax %nc : tensor<8x12xf32>
    %sc = dtl.sharding_constraint %s : tensor<8x12xf32> to #dtl.sharding<@grid, [[0], [1]]>
    %ce = dtl.cross_entropy %sc, %y : tensor<8x12xf32>, tensor<8xi32> -> tensor<8xf32>
    return %ce : tensor<8xf32>
  }
}

// -----

// Attention needs its sequence whole: an input split along it is gathered.

// CHECK-LABEL: func.func @attention_sequence
// CHECK:      %[[QG:.*]] = shard.all_gather %arg0 on @grid grid_axes = [1] gather_axis = 1 : tensor<1x4x8xf32> -> tensor<1x8x8xf32>
// CHECK-NEXT: dtl.causal_attention %[[QG]], %[[QG]], %[[QG]] {{.*}} : tensor<1x8x8xf32> -> tensor<1x2x8xf32>
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @attention_sequence(%q: tensor<2x8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [1], []]>})
      -> tensor<2x8x8xf32> {
    %att:2 = dtl.causal_attention %q, %q, %q {head_dim = 4 : i64} : tensor<2x8x8xf32> -> tensor<2x2x8xf32>
    return %att#0 : tensor<2x8x8xf32>
  }
}

// -----

// A split moving between dimensions beside another split is one all-to-all
// over the axes that move: [dp, tp] -> [(dp, tp), _] sends tp's pieces to
// dimension 0, after dp; and back.

// CHECK-LABEL: func.func @move_beside_a_split
// CHECK:      %[[M:.*]] = shard.all_to_all %arg0 on @grid grid_axes = [1] split_axis = 0 concat_axis = 1 : tensor<4x4xf32> -> tensor<2x8xf32>
// CHECK-NEXT: %[[B:.*]] = shard.all_to_all %[[M]] on @grid grid_axes = [1] split_axis = 1 concat_axis = 0 : tensor<2x8xf32> -> tensor<4x4xf32>
// CHECK-NEXT: return %[[M]], %[[B]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @move_beside_a_split(%x: tensor<8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [1]]>})
      -> (tensor<8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0, 1], []]>},
          tensor<8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [1]]>}) {
    %rows = dtl.sharding_constraint %x : tensor<8x8xf32> to #dtl.sharding<@grid, [[0, 1], []]>
    return %rows, %rows : tensor<8x8xf32>, tensor<8x8xf32>
  }
}

// -----

// An embedding's table split by rows (Megatron's VocabParallelEmbedding):
// each rank looks up its block of rows, zeros for the other ids, and the
// partial results are summed; its gradient is the rank's block of rows.

// CHECK-LABEL: func.func @embedding_rows
// CHECK:      %[[E:.*]] = dtl.embedding %arg0, %arg1 {row_axes = array<i16: 1>} : tensor<8x4xf32>, tensor<4x2xi32> -> tensor<4x2x4xf32>
// CHECK-NEXT: %[[R:.*]] = shard.all_reduce %[[E]] on @grid grid_axes = [1]
// CHECK:      dtl.embedding_grad %arg1, %{{.*}} {row_axes = array<i16: 1>} : tensor<4x2xi32>, tensor<4x2x4xf32> -> tensor<8x4xf32>
// CHECK-NEXT: shard.all_reduce %{{.*}} on @grid grid_axes = [0] : tensor<8x4xf32>
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @embedding_rows(%table: tensor<16x4xf32> {dtl.sharding = #dtl.sharding<@grid, [[1], []]>},
                            %ids: tensor<8x2xi32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                            %g: tensor<8x2x4xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>})
      -> (tensor<8x2x4xf32>, tensor<16x4xf32>) {
    %e = dtl.embedding %table, %ids : tensor<16x4xf32>, tensor<8x2xi32> -> tensor<8x2x4xf32>
    %d = dtl.embedding_grad %ids, %g : tensor<8x2xi32>, tensor<8x2x4xf32> -> tensor<16x4xf32>
    %dc = dtl.sharding_constraint %d : tensor<16x4xf32> to #dtl.sharding<@grid, [[1], []]>
    return %e, %dc : tensor<8x2x4xf32>, tensor<16x4xf32>
  }
}

// -----

// Cross-entropy over logits split along the classes (Megatron's
// vocab_parallel_cross_entropy): each rank's [2, rows] statistics are
// gathered and combined, never the logits; the gradient reuses the
// combined log-sum-exp and stays split. The accuracy's argmax is combined
// from each rank's maximum and its class alike.

// CHECK-LABEL: func.func @vocab_parallel_cross_entropy
// CHECK:      %[[P:.*]] = dtl.cross_entropy_partial %arg0, %arg1 {class_axes = array<i16: 1>} : tensor<4x8xf32>, tensor<4xi32> -> tensor<2x4xf32>
// CHECK-NEXT: %[[G:.*]] = shard.all_gather %[[P]] on @grid grid_axes = [1] gather_axis = 0 : tensor<2x4xf32> -> tensor<4x4xf32>
// CHECK-NEXT: %[[L:.*]], %[[LSE:.*]] = dtl.cross_entropy_combine %[[G]], %arg1 : tensor<4x4xf32>, tensor<4xi32> -> tensor<4xf32>, tensor<4xf32>
// CHECK-NEXT: dtl.cross_entropy_grad %arg0, %arg1, %[[L]] lse %[[LSE]] {class_axes = array<i16: 1>} : {{.*}} -> tensor<4x8xf32>
// CHECK-NEXT: %[[M:.*]] = dtl.argmax_partial %arg0 {class_axes = array<i16: 1>} : tensor<4x8xf32> -> tensor<2x4xf32>
// CHECK-NEXT: %[[MG:.*]] = shard.all_gather %[[M]] on @grid grid_axes = [1] gather_axis = 0 : tensor<2x4xf32> -> tensor<4x4xf32>
// CHECK-NEXT: dtl.correct_combine %[[MG]], %arg1 : tensor<4x4xf32>, tensor<4xi32> -> tensor<4xf32>
// CHECK-NOT:  shard.all_gather
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @vocab_parallel_cross_entropy(
      %logits: tensor<8x16xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [1]]>},
      %labels: tensor<8xi32> {dtl.sharding = #dtl.sharding<@grid, [[0]]>})
      -> (tensor<8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0]]>},
          tensor<8x16xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], [1]]>},
          tensor<8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0]]>}) {
    %ce = dtl.cross_entropy %logits, %labels : tensor<8x16xf32>, tensor<8xi32> -> tensor<8xf32>
    %d = dtl.cross_entropy_grad %logits, %labels, %ce : tensor<8x16xf32>, tensor<8xi32>, tensor<8xf32> -> tensor<8x16xf32>
    %ok = dtl.correct %logits, %labels : tensor<8x16xf32>, tensor<8xi32> -> tensor<8xf32>
    return %ce, %d, %ok : tensor<8xf32>, tensor<8x16xf32>, tensor<8xf32>
  }
}

// -----

// Sequence parallelism (Megatron-LM, Korthikanti et al.): the input of a
// column-parallel matmul split along the sequence is all-gathered; the
// row-parallel matmul's partial sum is reduce-scattered along it; partial
// sums meeting in an add (the gradients of q, k and v) are added first and
// reduced once.

// CHECK-LABEL: func.func @sequence_parallel
// CHECK:      %[[A:.*]] = shard.all_gather %{{.*}} on @grid grid_axes = [0] gather_axis = 1 : tensor<2x4x8xf32> -> tensor<2x8x8xf32>
// CHECK-NEXT: %[[Q:.*]] = dtl.matmul %[[A]], %arg1 : tensor<2x8x8xf32>, tensor<8x4xf32> -> tensor<2x8x4xf32>
// CHECK-NEXT: %[[O:.*]] = dtl.matmul %[[Q]], %arg2 : tensor<2x8x4xf32>, tensor<4x8xf32> -> tensor<2x8x8xf32>
// CHECK-NEXT: %[[P:.*]] = dtl.matmul %[[Q]], %arg2 : tensor<2x8x4xf32>, tensor<4x8xf32> -> tensor<2x8x8xf32>
// CHECK-NEXT: %[[S:.*]] = dtl.add %[[O]], %[[P]] : tensor<2x8x8xf32>
// CHECK-NEXT: shard.reduce_scatter %[[S]] on @grid grid_axes = [0] scatter_axis = 1 : tensor<2x8x8xf32> -> tensor<2x4x8xf32>
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2)
  func.func @sequence_parallel(%x: tensor<2x8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0], []]>},
                               %w1: tensor<8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0]]>},
                               %w2: tensor<8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<2x8x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0], []]>}) {
    %a = dtl.exp %x : tensor<2x8x8xf32>
    %q = dtl.matmul %a, %w1 : tensor<2x8x8xf32>, tensor<8x8xf32> -> tensor<2x8x8xf32>
    %o = dtl.matmul %q, %w2 : tensor<2x8x8xf32>, tensor<8x8xf32> -> tensor<2x8x8xf32>
    %p = dtl.matmul %q, %w2 : tensor<2x8x8xf32>, tensor<8x8xf32> -> tensor<2x8x8xf32>
    %s = dtl.add %o, %p : tensor<2x8x8xf32>
    %c = dtl.sharding_constraint %s : tensor<2x8x8xf32> to #dtl.sharding<@grid, [[], [0], []]>
    return %c : tensor<2x8x8xf32>
  }
}

// -----

// Split and concat. An interleaved split (its input's n blocks each hold
// 1/n of every piece) of a dimension split n ways is local: each rank
// splits its block, and the pieces stay split; so is the concat of its
// gradient (the function returns it whole: gathered). A plain split needs
// its dimension whole: the operand is gathered for it.

// CHECK-LABEL: func.func @pieces
// CHECK:       %[[G:.*]] = shard.all_gather %arg0 on @grid grid_axes = [0] gather_axis = 1 : tensor<4x4xf32> -> tensor<4x8xf32>
// CHECK-NEXT:  %[[P:.*]]:2 = dtl.split %arg0 dim 1 : tensor<4x4xf32> -> tensor<4x2xf32>, tensor<4x2xf32>
// CHECK-NEXT:  %[[C:.*]] = dtl.concat %[[P]]#1, %[[P]]#0 dim 1 : tensor<4x2xf32>, tensor<4x2xf32> -> tensor<4x4xf32>
// CHECK-NEXT:  shard.all_gather %[[C]] {{.*}} -> tensor<4x8xf32>
// CHECK-NEXT:  dtl.split %[[G]] dim 1 : tensor<4x8xf32> -> tensor<4x4xf32>, tensor<4x4xf32>
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @pieces(%x: tensor<4x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0]]>})
      -> (tensor<4x8xf32>, tensor<4x4xf32>) {
    %a, %b = dtl.split %x dim 1 interleave 2 : tensor<4x8xf32> -> tensor<4x4xf32>, tensor<4x4xf32>
    %c = dtl.concat %b, %a dim 1 interleave 2 : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x8xf32>
    %p, %q = dtl.split %x dim 1 : tensor<4x8xf32> -> tensor<4x4xf32>, tensor<4x4xf32>
    return %c, %q : tensor<4x8xf32>, tensor<4x4xf32>
  }
}

// -----

// A constant needed in two layouts is made in each (every rank its block of
// the same value), never gathered or sliced: the one the mul reads is the
// rank's [2, 3] block, the one returned whole is whole.

// CHECK-LABEL: func.func @constant
// CHECK-DAG:  %[[BLOCK:.*]] = dtl.constant 2.000000e+00 : tensor<2x3xf32>
// CHECK-DAG:  %[[WHOLE:.*]] = dtl.constant 2.000000e+00 : tensor<4x3xf32>
// CHECK:      %[[Y:.*]] = dtl.mul %arg0, %[[BLOCK]] : tensor<2x3xf32>
// CHECK-NEXT: %[[G:.*]] = shard.all_gather %[[Y]]
// CHECK-NEXT: return %[[G]], %[[WHOLE]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @constant(%x: tensor<4x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<4x3xf32>, tensor<4x3xf32>) {
    %c = dtl.constant 2.000000e+00 : tensor<4x3xf32>
    %y = dtl.mul %x, %c : tensor<4x3xf32>
    return %y, %c : tensor<4x3xf32>, tensor<4x3xf32>
  }
}
