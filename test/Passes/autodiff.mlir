// RUN: dtl-opt %s --dtl-autodiff --split-input-file --verify-diagnostics | FileCheck %s

// The gradient function runs the forward ops, then each op's VJP in reverse:
// the seed 1.0, cross_entropy_grad, relu_grad, and one matmul per operand
// (transposed in place, never materialised). x gets no gradient: only params do.

// CHECK-LABEL: func.func @m_grad
// CHECK-SAME: -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<3x2xf32> {dtl.name = "w", dtl.role = #dtl.role<grad>})
// CHECK:      %[[MM:.*]] = dtl.matmul %arg1, %arg0
// CHECK:      %[[RELU:.*]] = dtl.relu %[[MM]]
// CHECK:      %[[CE:.*]] = dtl.cross_entropy %[[RELU]], %arg2
// CHECK:      %[[LOSS:.*]] = dtl.reduce_sum %[[CE]] dims [0]
// CHECK:      %[[SEED:.*]] = dtl.constant 1.000000e+00 : tensor<f32>
// CHECK:      %[[SEEDS:.*]] = dtl.broadcast %[[SEED]] dims [] : tensor<f32> -> tensor<4xf32>
// CHECK:      %[[DLOGITS:.*]] = dtl.cross_entropy_grad %[[RELU]], %arg2, %[[SEEDS]]
// CHECK:      %[[DMM:.*]] = dtl.relu_grad %[[MM]], %[[DLOGITS]]
// CHECK:      %[[DW:.*]] = dtl.matmul %arg1, %[[DMM]] {transpose_lhs}
// CHECK-NOT:  transpose_rhs
// CHECK:      return %[[LOSS]], %[[DW]]
module attributes {dtl.model = @m} {
  func.func @m(%w: tensor<3x2xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
               %x: tensor<4x3xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"},
               %y: tensor<4xi32> {dtl.role = #dtl.role<input>, dtl.name = "y"}) -> tensor<f32> {
    %0 = dtl.matmul %x, %w : tensor<4x3xf32>, tensor<3x2xf32> -> tensor<4x2xf32>
    %1 = dtl.relu %0 : tensor<4x2xf32>
    %2 = dtl.cross_entropy %1, %y : tensor<4x2xf32>, tensor<4xi32> -> tensor<4xf32>
    %3 = dtl.reduce_sum %2 dims [0] : tensor<4xf32> -> tensor<f32>
    return %3 : tensor<f32>
  }
}

// -----

// A use of a param through an op without a gradient is an error at that op.
module attributes {dtl.model = @m} {
  func.func @m(%w: tensor<4x2xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
               %y: tensor<4xi32> {dtl.role = #dtl.role<input>, dtl.name = "y"}) -> tensor<f32> {
    // expected-error@+1 {{'dtl.correct' has no gradient, but a param reaches the loss through it}}
    %0 = dtl.correct %w, %y : tensor<4x2xf32>, tensor<4xi32> -> tensor<4xf32>
    %1 = dtl.reduce_sum %0 dims [0] : tensor<4xf32> -> tensor<f32>
    return %1 : tensor<f32>
  }
}

// -----

// expected-error@+1 {{no model function @m with a loss result}}
module attributes {dtl.model = @m} {
}

// -----

// A stacked param read by two layers: its gradient is one dtl.stack of the
// layers' gradients (a layer nobody reads would get zeros), not a sum of
// mostly-zero stacked tensors.

// CHECK-LABEL: func.func @stacked_grad
// CHECK:      %[[L0:.*]] = dtl.layer %arg0[0]
// CHECK:      %[[L1:.*]] = dtl.layer %arg0[1]
// CHECK:      %[[S:.*]] = dtl.stack %{{.*}}, %{{.*}} : tensor<3xf32>, tensor<3xf32> -> tensor<2x3xf32>
// CHECK:      return %{{.*}}, %[[S]]
module attributes {dtl.model = @stacked} {
  func.func @stacked(%w: tensor<2x3xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                     %x: tensor<3xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> tensor<f32> {
    %w0 = dtl.layer %w[0] : tensor<2x3xf32> -> tensor<3xf32>
    %w1 = dtl.layer %w[1] : tensor<2x3xf32> -> tensor<3xf32>
    %h = dtl.mul %x, %w0 : tensor<3xf32>
    %y = dtl.mul %h, %w1 : tensor<3xf32>
    %s = dtl.reduce_sum %y dims [0] : tensor<3xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}
