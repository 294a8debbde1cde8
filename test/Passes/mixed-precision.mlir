// RUN: dtl-opt %s --dtl-mixed-precision --split-input-file | FileCheck %s

// A linear layer trained with AdamW in bf16: the master weight stays an f32
// argument and a convert makes its bf16 working copy, read by both GEMMs;
// activations are bf16; the weight's gradient comes out of its GEMM in f32
// and reaches the update through the all-reduce in f32; the loss and the
// per-example losses are f32, and so are the gradient's squares that its
// norm sums (what only a sum to a scalar reads is not rounded to bf16).

// CHECK-LABEL: func.func @step
// CHECK: %[[W16:.*]] = dtl.convert %arg0 : tensor<16x8xf32> -> tensor<16x8xbf16>
// CHECK: %[[X16:.*]] = dtl.convert %arg1 : tensor<4x16xf32> -> tensor<4x16xbf16>
// CHECK: %[[Y:.*]] = dtl.matmul %[[X16]], %[[W16]] : tensor<4x16xbf16>, tensor<16x8xbf16> -> tensor<4x8xbf16>
// CHECK: dtl.cross_entropy %[[Y]], %arg2 : tensor<4x8xbf16>, tensor<4xi32> -> tensor<4xf32>
// CHECK: dtl.reduce_sum {{.*}} : tensor<4xf32> -> tensor<f32>
// CHECK: dtl.cross_entropy_grad %[[Y]], %arg2, {{.*}} : tensor<4x8xbf16>, tensor<4xi32>, tensor<4xf32> -> tensor<4x8xbf16>
// CHECK: %[[DW:.*]] = dtl.matmul %[[X16]], {{.*}} {transpose_lhs} : tensor<4x16xbf16>, tensor<4x8xbf16> -> tensor<16x8xf32>
// CHECK: %[[SUM:.*]] = shard.all_reduce %[[DW]] {{.*}} : tensor<16x8xf32> -> tensor<16x8xf32>
// CHECK: %[[SQ:.*]] = dtl.mul %[[SUM]], %[[SUM]] : tensor<16x8xf32>
// CHECK: dtl.reduce_sum %[[SQ]] dims [0, 1] : tensor<16x8xf32> -> tensor<f32>
// CHECK: dtl.adamw_update %arg0, %[[SUM]], %arg3, %arg4, {{.*}} : tensor<16x8xf32>, tensor<f32>
module attributes {dtl.train = #dtl.train<data = <tokens, inputs = ["x", "y"], files = ["t.bin"]>, steps = 1, precision = bf16>} {
  shard.grid @grid(shape = 2)
  func.func @step(%w: tensor<16x8xf32>, %x: tensor<4x16xf32>, %labels: tensor<4xi32>, %m: tensor<16x8xf32>, %v: tensor<16x8xf32>, %lr: tensor<f32>)
      -> (tensor<f32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>) {
    %y = dtl.matmul %x, %w : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
    %ce = dtl.cross_entropy %y, %labels : tensor<4x8xf32>, tensor<4xi32> -> tensor<4xf32>
    %loss = dtl.reduce_sum %ce dims [0] : tensor<4xf32> -> tensor<f32>
    %one = dtl.constant 1.0 : tensor<4xf32>
    %dy = dtl.cross_entropy_grad %y, %labels, %one : tensor<4x8xf32>, tensor<4xi32>, tensor<4xf32> -> tensor<4x8xf32>
    %dw = dtl.matmul %x, %dy {transpose_lhs} : tensor<4x16xf32>, tensor<4x8xf32> -> tensor<16x8xf32>
    %sum = shard.all_reduce %dw on @grid grid_axes = [0] : tensor<16x8xf32> -> tensor<16x8xf32>
    %sq = dtl.mul %sum, %sum : tensor<16x8xf32>
    %norm2 = dtl.reduce_sum %sq dims [0, 1] : tensor<16x8xf32> -> tensor<f32>
    %nw, %nm, %nv = dtl.adamw_update %w, %sum, %m, %v, %lr, %lr, %norm2 {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : tensor<16x8xf32>, tensor<f32>
    return %loss, %nw, %nm, %nv : tensor<f32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>
  }
}

// -----

// Layernorm keeps its statistics in f32 and its gradient reads them so; a
// repeat's carried activation and stacked saves are bf16, its stacked
// weights stay f32 masters converted inside the body.

// CHECK-LABEL: func.func @layers
// CHECK: dtl.repeat 2 carry(%{{.*}} : tensor<4x8xbf16>) stacked(%arg1 : tensor<2x8xf32>) -> (tensor<4x8xbf16>, tensor<2x4xf32>)
// CHECK: ^bb0(%{{.*}}: index, %[[H:.*]]: tensor<4x8xbf16>, %[[WI:.*]]: tensor<8xf32>):
// CHECK: %[[W16:.*]] = dtl.convert %[[WI]] : tensor<8xf32> -> tensor<8xbf16>
// CHECK: dtl.layernorm %[[H]], %[[W16]], %[[W16]] {eps = 1.000000e-05 : f64} : tensor<4x8xbf16>, tensor<8xbf16> -> tensor<4x8xbf16>, tensor<4xf32>
// CHECK: dtl.yield {{.*}} : tensor<4x8xbf16>, tensor<4xf32>
// CHECK: dtl.layernorm_grad_input {{.*}} : tensor<4x8xbf16>, tensor<8xbf16>, tensor<4xf32>
// CHECK: return {{.*}} : tensor<4x8xf32>
module attributes {dtl.train = #dtl.train<data = <tokens, inputs = ["x", "y"], files = ["t.bin"]>, steps = 1, precision = bf16>} {
  func.func @layers(%x: tensor<4x8xf32>, %ws: tensor<2x8xf32>, %g: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %h = dtl.gelu %x : tensor<4x8xf32>
    %out, %means = dtl.repeat 2 carry(%h : tensor<4x8xf32>) stacked(%ws : tensor<2x8xf32>) -> (tensor<4x8xf32>, tensor<2x4xf32>) {
    ^bb0(%i: index, %hi: tensor<4x8xf32>, %wi: tensor<8xf32>):
      %y, %mean, %rstd = dtl.layernorm %hi, %wi, %wi {eps = 1.0e-5 : f64} : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xf32>, tensor<4xf32>
      dtl.yield %y, %mean : tensor<4x8xf32>, tensor<4xf32>
    }
    %w0 = dtl.reduce_sum %ws dims [0] : tensor<2x8xf32> -> tensor<8xf32>
    %m0 = dtl.reduce_sum %means dims [0] : tensor<2x4xf32> -> tensor<4xf32>
    %dx = dtl.layernorm_grad_input %out, %w0, %m0, %m0, %g : tensor<4x8xf32>, tensor<8xf32>, tensor<4xf32>
    return %dx : tensor<4x8xf32>
  }
}

// -----

// With reduce_precision = bf16 the all-reduce sums the bf16 gradient (half
// the bytes) and the update reads it converted to f32.

// CHECK-LABEL: func.func @reduce_bf16
// CHECK: %[[DW:.*]] = dtl.matmul {{.*}} {transpose_lhs} : tensor<4x16xbf16>, tensor<4x8xbf16> -> tensor<16x8xbf16>
// CHECK: %[[SUM:.*]] = shard.all_reduce %[[DW]] {{.*}} : tensor<16x8xbf16> -> tensor<16x8xbf16>
// CHECK: %[[G:.*]] = dtl.convert %[[SUM]] : tensor<16x8xbf16> -> tensor<16x8xf32>
// CHECK: dtl.adamw_update %arg0, %[[G]],
module attributes {dtl.train = #dtl.train<data = <tokens, inputs = ["x", "y"], files = ["t.bin"]>, steps = 1, precision = bf16, reduce_precision = bf16>} {
  shard.grid @grid(shape = 2)
  func.func @reduce_bf16(%w: tensor<16x8xf32>, %x: tensor<4x16xf32>, %dy: tensor<4x8xf32>, %m: tensor<16x8xf32>, %v: tensor<16x8xf32>, %lr: tensor<f32>)
      -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>) {
    %dw = dtl.matmul %x, %dy {transpose_lhs} : tensor<4x16xf32>, tensor<4x8xf32> -> tensor<16x8xf32>
    %sum = shard.all_reduce %dw on @grid grid_axes = [0] : tensor<16x8xf32> -> tensor<16x8xf32>
    %nw, %nm, %nv = dtl.adamw_update %w, %sum, %m, %v, %lr, %lr, %lr {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : tensor<16x8xf32>, tensor<f32>
    return %nw, %nm, %nv : tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>
  }
}
