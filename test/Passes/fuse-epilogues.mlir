// RUN: dtl-opt %s --dtl-fuse-epilogues --split-input-file | FileCheck %s

// A matmul whose only use adds a row bias becomes one matmul_bias; the
// broadcast, now unused, goes too.

// CHECK-LABEL: func.func @bias
// CHECK-NEXT: %[[F:.*]] = dtl.matmul_bias %arg0, %arg1, %arg2 {transpose_rhs} : tensor<2x8x4xf32>, tensor<6x4xf32>, tensor<6xf32> -> tensor<2x8x6xf32>
// CHECK-NEXT: return %[[F]]
func.func @bias(%x: tensor<2x8x4xf32>, %w: tensor<6x4xf32>, %b: tensor<6xf32>) -> tensor<2x8x6xf32> {
  %m = dtl.matmul %x, %w {transpose_rhs} : tensor<2x8x4xf32>, tensor<6x4xf32> -> tensor<2x8x6xf32>
  %bb = dtl.broadcast %b dims [2] : tensor<6xf32> -> tensor<2x8x6xf32>
  %y = dtl.add %bb, %m : tensor<2x8x6xf32>
  return %y : tensor<2x8x6xf32>
}

// -----

// Not fused: the matmul is used twice (its value is needed on its own), and
// a broadcast along the last dimension is not a row bias.

// CHECK-LABEL: func.func @keep
// CHECK: dtl.matmul
// CHECK: dtl.add
// CHECK: dtl.matmul
// CHECK: dtl.add
// CHECK-NOT: matmul_bias
func.func @keep(%x: tensor<8x4xf32>, %w: tensor<4x8xf32>, %b: tensor<8xf32>) -> (tensor<8x8xf32>, tensor<8x8xf32>) {
  %m = dtl.matmul %x, %w : tensor<8x4xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
  %bb = dtl.broadcast %b dims [1] : tensor<8xf32> -> tensor<8x8xf32>
  %y = dtl.add %m, %bb : tensor<8x8xf32>
  %z = dtl.add %m, %y : tensor<8x8xf32>
  %m2 = dtl.matmul %x, %w : tensor<8x4xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
  %col = dtl.broadcast %b dims [0] : tensor<8xf32> -> tensor<8x8xf32>
  %u = dtl.add %m2, %col : tensor<8x8xf32>
  return %z, %u : tensor<8x8xf32>, tensor<8x8xf32>
}
