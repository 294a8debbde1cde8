// RUN: dtl-opt %s --dtl-interleave-splits --split-input-file | FileCheck %s

// nanoGPT's c_attn on tp: the fused weight and bias split by columns, then
// q, k, v split from the product. Both params are stored interleaved (two
// blocks, each a half of q, k and v) and the split reads that order.

// CHECK-LABEL: func.func @qkv
// CHECK-SAME:  %arg1: tensor<4x12xf32> {dtl.interleave = array<i64: 1, 2, 4, 4, 4>
// CHECK-SAME:  %arg2: tensor<12xf32> {dtl.interleave = array<i64: 0, 2, 4, 4, 4>
// CHECK:       dtl.split %{{.*}} dim 1 interleave 2 :
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @qkv(%x: tensor<8x4xf32> {dtl.role = #dtl.role<input>, dtl.sharding = #dtl.sharding<@grid, [[0], []]>},
                 %w: tensor<4x12xf32> {dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], [1]]>},
                 %b: tensor<12xf32> {dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[1]]>})
      -> (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>) {
    %h = dtl.matmul %x, %w : tensor<8x4xf32>, tensor<4x12xf32> -> tensor<8x12xf32>
    %bb = dtl.broadcast %b dims [1] : tensor<12xf32> -> tensor<8x12xf32>
    %s = dtl.add %h, %bb : tensor<8x12xf32>
    %g = dtl.gelu %s : tensor<8x12xf32>
    %q, %k, %v = dtl.split %g dim 1 : tensor<8x12xf32> -> tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>
    return %q, %k, %v : tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>
  }
}

// -----

// Stacked layer params reach the split through the repeat: the weight's
// columns are dimension 2 of the stacked argument. A replicated bias is
// stored in the same order as the weight it is added to.

// CHECK-LABEL: func.func @stacked
// CHECK-SAME:  dtl.interleave = array<i64: 2, 2, 2, 6>
// CHECK-SAME:  dtl.interleave = array<i64: 1, 2, 2, 6>
// CHECK:       dtl.split %{{.*}} dim 1 interleave 2 :
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @stacked(%x: tensor<8x4xf32> {dtl.role = #dtl.role<input>},
                     %w: tensor<3x4x8xf32> {dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], [], [0]]>},
                     %b: tensor<3x8xf32> {dtl.role = #dtl.role<param>})
      -> tensor<8x4xf32> {
    %h = dtl.repeat 3 carry(%x : tensor<8x4xf32>) stacked(%w, %b : tensor<3x4x8xf32>, tensor<3x8xf32>)
        -> (tensor<8x4xf32>) {
    ^bb0(%i: index, %xi: tensor<8x4xf32>, %wi: tensor<4x8xf32>, %bi: tensor<8xf32>):
      %y = dtl.matmul %xi, %wi : tensor<8x4xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
      %bb = dtl.broadcast %bi dims [1] : tensor<8xf32> -> tensor<8x8xf32>
      %s = dtl.add %y, %bb : tensor<8x8xf32>
      %small, %big = dtl.split %s dim 1 : tensor<8x8xf32> -> tensor<8x2xf32>, tensor<8x6xf32>
      %t = dtl.matmul %big, %big {transpose_rhs} : tensor<8x6xf32>, tensor<8x6xf32> -> tensor<8x8xf32>
      %r = dtl.matmul %t, %xi : tensor<8x8xf32>, tensor<8x4xf32> -> tensor<8x4xf32>
      dtl.yield %r : tensor<8x4xf32>
    }
    return %h : tensor<8x4xf32>
  }
}

// -----

// Left as they are: a product also read elsewhere (storing the weight
// permuted would permute that read too), an input in the cone (its data
// cannot be reordered), dropout in the cone (its mask is drawn by position),
// pieces that do not split 2 ways, and a weight that is not split.

// CHECK-LABEL: func.func @left_alone
// CHECK-NOT:   dtl.interleave
// CHECK-NOT:   interleave 2
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @left_alone(%x: tensor<8x4xf32> {dtl.role = #dtl.role<input>},
                        %data: tensor<8x8xf32> {dtl.role = #dtl.role<input>},
                        %step: tensor<f32> {dtl.role = #dtl.role<step>},
                        %w1: tensor<4x8xf32> {dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], [0]]>},
                        %w2: tensor<4x8xf32> {dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], [0]]>},
                        %w3: tensor<4x8xf32> {dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], [0]]>},
                        %w4: tensor<4x6xf32> {dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], [0]]>},
                        %w5: tensor<4x8xf32> {dtl.role = #dtl.role<param>})
      -> (tensor<8x4xf32>, tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x3xf32>, tensor<8x4xf32>) {
    %h1 = dtl.matmul %x, %w1 : tensor<8x4xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
    %a1, %b1 = dtl.split %h1 dim 1 : tensor<8x8xf32> -> tensor<8x4xf32>, tensor<8x4xf32>
    %h2 = dtl.matmul %x, %w2 : tensor<8x4xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
    %m2 = dtl.add %h2, %data : tensor<8x8xf32>
    %a2, %b2 = dtl.split %m2 dim 1 : tensor<8x8xf32> -> tensor<8x4xf32>, tensor<8x4xf32>
    %h3 = dtl.matmul %x, %w3 : tensor<8x4xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
    %d3 = dtl.dropout %h3, %step {layer_counts = array<i64>, rate = 0.1 : f64, stream = 0 : i64} : tensor<8x8xf32>, tensor<f32>
    %a3, %b3 = dtl.split %d3 dim 1 : tensor<8x8xf32> -> tensor<8x4xf32>, tensor<8x4xf32>
    %h4 = dtl.matmul %x, %w4 : tensor<8x4xf32>, tensor<4x6xf32> -> tensor<8x6xf32>
    %a4, %b4 = dtl.split %h4 dim 1 : tensor<8x6xf32> -> tensor<8x3xf32>, tensor<8x3xf32>
    %h5 = dtl.matmul %x, %w5 : tensor<8x4xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
    %a5, %b5 = dtl.split %h5 dim 1 : tensor<8x8xf32> -> tensor<8x4xf32>, tensor<8x4xf32>
    return %a1, %h1, %a2, %a3, %a4, %a5 : tensor<8x4xf32>, tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x3xf32>, tensor<8x4xf32>
  }
}
