// RUN: dtl-opt %s --dtl-propagate-sharding --split-input-file | FileCheck %s

// On a 2-D mesh, x split by rows over dp and w by columns over tp give
// x @ w both splits; the elementwise chain keeps them; the sum over rows
// keeps only the column split. The constant has no sharding of its own and
// takes its consumer's (propagation runs backwards as well as forwards).

// CHECK-LABEL: func.func @m
// CHECK:      dtl.matmul {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.constant {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.add {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.relu {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.reduce_sum {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[1]]>]}
// A contraction over the split dimension: the result is not split (the
// partitioner makes it a partial sum).
// CHECK:      dtl.matmul {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[], []]>], transpose_lhs}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2x2)
  func.func @m(%x: tensor<4x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
               %w: tensor<3x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [1]]>},
               %v: tensor<4x5xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<8xf32>, tensor<3x5xf32>) {
    %0 = dtl.matmul %x, %w : tensor<4x3xf32>, tensor<3x8xf32> -> tensor<4x8xf32>
    %c = dtl.constant 1.0 : tensor<4x8xf32>
    %1 = dtl.add %0, %c : tensor<4x8xf32>
    %2 = dtl.relu %1 : tensor<4x8xf32>
    %3 = dtl.reduce_sum %2 dims [0] : tensor<4x8xf32> -> tensor<8xf32>
    %4 = dtl.matmul %x, %v {transpose_lhs} : tensor<4x3xf32>, tensor<4x5xf32> -> tensor<3x5xf32>
    return %3, %4 : tensor<8xf32>, tensor<3x5xf32>
  }
}

// -----

// A constraint is decided before anything flows and wins, and as the
// largest value around it decides the layout of x @ w too: w's column split
// (a smaller tensor) does not, so the partitioner will gather w rather than
// move the product. The constant feeding the constraint takes it
// (propagation runs backwards too).

// CHECK-LABEL: func.func @constraint
// CHECK:      dtl.matmul {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
// CHECK:      dtl.constant {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
// CHECK:      dtl.sharding_constraint {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
// CHECK:      dtl.add {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2)
  func.func @constraint(%x: tensor<4x3xf32>,
                        %w: tensor<3x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0]]>})
      -> tensor<4x8xf32> {
    %0 = dtl.matmul %x, %w : tensor<4x3xf32>, tensor<3x8xf32> -> tensor<4x8xf32>
    %1 = dtl.constant 2.0 : tensor<4x8xf32>
    %2 = dtl.sharding_constraint %1 : tensor<4x8xf32> to #dtl.sharding<@grid, [[0], []]>
    %3 = dtl.add %0, %2 : tensor<4x8xf32>
    return %3 : tensor<4x8xf32>
  }
}

// -----

// Splits are decided before replication: the replicated param and gradient
// do not undo the split of the optimizer state they meet (ZeRO-1), so the
// update runs split.

// CHECK-LABEL: func.func @split_wins
// CHECK:      dtl.sgd_update {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>, #dtl.sharding<@grid, {{\[}}[0], []]>]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2)
  func.func @split_wins(%p: tensor<8x3xf32>, %x: tensor<8x3xf32>,
                        %buf: tensor<8x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                        %lr: tensor<f32>) -> (tensor<8x3xf32>, tensor<8x3xf32>) {
    %g = dtl.mul %x, %x : tensor<8x3xf32>
    %new, %newbuf = dtl.sgd_update %p, %g, %buf, %lr, %lr {momentum = 0.9 : f64, weight_decay = 0.0 : f64} : tensor<8x3xf32>, tensor<f32>
    return %new, %newbuf : tensor<8x3xf32>, tensor<8x3xf32>
  }
}

// -----

// ZeRO's layouts are storage: neither the optimizer state an update meets
// nor a `storage` constraint flows back into how a gradient is computed (the
// constants stay replicated; the partitioner slices or reduce-scatters them
// for the update). A plain constraint does flow back into its constant.

// CHECK-LABEL: func.func @storage_does_not_steer
// CHECK:      dtl.constant {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[], []]>]}
// CHECK:      dtl.sgd_update {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>, #dtl.sharding<@grid, {{\[}}[0], []]>]
// CHECK:      dtl.constant {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[], []]>]}
// CHECK:      dtl.constant {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2)
  func.func @storage_does_not_steer(%p: tensor<8x3xf32>,
                                    %buf: tensor<8x3xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                                    %lr: tensor<f32>)
      -> (tensor<8x3xf32>, tensor<8x3xf32>, tensor<8x3xf32>, tensor<8x3xf32>) {
    %g = dtl.constant 1.0 : tensor<8x3xf32>
    %new, %newbuf = dtl.sgd_update %p, %g, %buf, %lr, %lr {momentum = 0.9 : f64, weight_decay = 0.0 : f64} : tensor<8x3xf32>, tensor<f32>
    %s = dtl.constant 2.0 : tensor<8x3xf32>
    %stored = dtl.sharding_constraint %s : tensor<8x3xf32> to #dtl.sharding<@grid, [[0], []]> {storage}
    %c = dtl.constant 3.0 : tensor<8x3xf32>
    %constrained = dtl.sharding_constraint %c : tensor<8x3xf32> to #dtl.sharding<@grid, [[0], []]>
    return %new, %newbuf, %stored, %constrained : tensor<8x3xf32>, tensor<8x3xf32>, tensor<8x3xf32>, tensor<8x3xf32>
  }
}

// -----

// A param's split steers the activations it meets before a derived layout
// does, though the activation is larger: the column-parallel matmul splits
// its columns (Megatron), and its sequence-split input will be gathered
// (sequence parallelism). The loops chosen are recorded for dtl-partition.

// CHECK-LABEL: func.func @param_steers
// CHECK:      dtl.matmul {{.*}}dtl.loop_shardings = [array<i16>, array<i16>, array<i16: 0>, array<i16>], dtl.shardings = [#dtl.sharding<@grid, {{\[}}[], [], [0]]>]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2)
  func.func @param_steers(%x: tensor<4x8x16xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0], []]>},
                          %w: tensor<16x32xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [0]]>})
      -> tensor<4x8x32xf32> {
    %a = dtl.exp %x : tensor<4x8x16xf32>
    %q = dtl.matmul %a, %w : tensor<4x8x16xf32>, tensor<16x32xf32> -> tensor<4x8x32xf32>
    return %q : tensor<4x8x32xf32>
  }
}

// -----

// A whole loop decides nothing for the values it indexes: the attention's
// replicated sequence does not reach the product after it, whose rows take
// the split of the constraint downstream.

// CHECK-LABEL: func.func @whole_decides_nothing
// CHECK:      dtl.matmul {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[], [0], []]>]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2)
  func.func @whole_decides_nothing(%q: tensor<2x8x8xf32>, %w: tensor<8x8xf32>) -> tensor<2x8x8xf32> {
    %att:2 = dtl.causal_attention %q, %q, %q {head_dim = 4 : i64} : tensor<2x8x8xf32> -> tensor<2x2x8xf32>
    %o = dtl.matmul %att#0, %w : tensor<2x8x8xf32>, tensor<8x8xf32> -> tensor<2x8x8xf32>
    %c = dtl.sharding_constraint %o : tensor<2x8x8xf32> to #dtl.sharding<@grid, [[], [0], []]>
    return %c : tensor<2x8x8xf32>
  }
}

// -----

// The largest tensor decides: a split bias does not decide the layout of the
// activation it is broadcast into and added to; the activation's rows split
// does, and the (small) bias is the one to move.

// CHECK-LABEL: func.func @largest_decides
// CHECK:      dtl.broadcast {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
// CHECK:      dtl.add {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>, dtl.model = @m} {
  shard.grid @grid(shape = 2)
  func.func @largest_decides(%b: tensor<10xf32> {dtl.sharding = #dtl.sharding<@grid, [[0]]>},
                             %h: tensor<256x10xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> tensor<256x10xf32> {
    %bb = dtl.broadcast %b dims [1] : tensor<10xf32> -> tensor<256x10xf32>
    %s = dtl.add %h, %bb : tensor<256x10xf32>
    return %s : tensor<256x10xf32>
  }
}

// -----

// A repeat ties its operands, body arguments, yielded values and results:
// the batch split of the carried value and the column (row) split of the
// stacked params' slices reach the body, and the body's layouts are every
// layer's. The layer dimension of a stacked value is never split.

// CHECK-LABEL: func.func @layers
// CHECK:      %[[U:.*]] = dtl.matmul {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.matmul {{.*}} {{.*}}dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]}
// CHECK:      dtl.arg_shardings = [#dtl.sharding<@grid, []>, #dtl.sharding<@grid, {{\[}}[0], []]>, #dtl.sharding<@grid, {{\[}}[], [1]]>, #dtl.sharding<@grid, {{\[}}[1], []]>]
// CHECK-SAME: dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], []]>]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @layers(%x: tensor<4x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                    %a: tensor<2x8x16xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [], [1]]>},
                    %b: tensor<2x16x8xf32> {dtl.sharding = #dtl.sharding<@grid, [[], [1], []]>})
      -> tensor<4x8xf32> {
    %h = dtl.repeat 2 carry(%x : tensor<4x8xf32>) stacked(%a, %b : tensor<2x8x16xf32>, tensor<2x16x8xf32>) -> (tensor<4x8xf32>) {
    ^bb0(%i: index, %xi: tensor<4x8xf32>, %ai: tensor<8x16xf32>, %bi: tensor<16x8xf32>):
      %u = dtl.matmul %xi, %ai : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
      %y = dtl.matmul %u, %bi : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
      dtl.yield %y : tensor<4x8xf32>
    }
    return %h : tensor<4x8xf32>
  }
}
