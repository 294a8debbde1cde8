// RUN: dtl-opt %s --dtl-propagate-sharding | FileCheck %s

// On a 2-D mesh, x split by rows over dp and w by columns over tp give
// x @ w both splits; the elementwise chain keeps them; the sum over rows
// keeps only the column split. The constant has no sharding of its own and
// takes its consumer's (propagation runs backwards as well as forwards).

// CHECK-LABEL: func.func @m
// CHECK:      dtl.matmul {{.*}} {dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.constant {{.*}} {dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.add {{.*}} {dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.relu {{.*}} {dtl.shardings = [#dtl.sharding<@grid, {{\[}}[0], [1]]>]}
// CHECK:      dtl.reduce_sum {{.*}} {dtl.shardings = [#dtl.sharding<@grid, {{\[}}[1]]>]}
// A contraction over the split dimension: the result is not split (the
// partitioner makes it a partial sum).
// CHECK:      dtl.matmul {{.*}} {dtl.shardings = [#dtl.sharding<@grid, {{\[}}[], []]>], transpose_lhs}
module attributes {dtl.model = @m} {
  shard.grid @grid(shape = 2x2) {dtl.axis_names = ["dp", "tp"]}
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
