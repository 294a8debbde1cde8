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

// A repeat (a scan over layers) differentiates into a reverse repeat. The
// forward also yields, per layer, what the backward reads: tanh's result and
// the carried value x_i (stacked results); the stacked param's slices are read
// again from the param itself. The backward carries d(x) and the running sum
// of the invariant's gradient, and yields each layer's slice of d(w).

// CHECK-LABEL: func.func @scan_grad
// CHECK:      %[[F:.*]]:3 = dtl.repeat 2 carry(%arg2 : tensor<3xf32>) stacked(%arg0 : tensor<2x3xf32>) invariant(%arg1 : tensor<3xf32>) -> (tensor<3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[X:.*]]: tensor<3xf32>, %[[W:.*]]: tensor<3xf32>, %[[V:.*]]: tensor<3xf32>):
// CHECK:      %[[T:.*]] = dtl.tanh
// CHECK-NEXT: dtl.yield %[[T]], %[[T]], %[[X]] : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
// CHECK:      %[[ONES:.*]] = dtl.broadcast
// CHECK:      %[[ZERO:.*]] = dtl.constant 0.000000e+00 : tensor<3xf32>
// CHECK:      %[[B:.*]]:3 = dtl.repeat 2 reverse carry(%[[ONES]], %[[ZERO]] : tensor<3xf32>, tensor<3xf32>) stacked(%[[F]]#1, %arg0, %[[F]]#2 : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<2x3xf32>) {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[DX:.*]]: tensor<3xf32>, %[[SUM:.*]]: tensor<3xf32>, %[[TI:.*]]: tensor<3xf32>, %[[WI:.*]]: tensor<3xf32>, %[[XI:.*]]: tensor<3xf32>):
// CHECK:      %[[DZ:.*]] = dtl.mul %[[DX]], %{{.*}}
// CHECK-NEXT: %[[DXPREV:.*]] = dtl.mul %[[DZ]], %[[WI]]
// CHECK-NEXT: %[[DW:.*]] = dtl.mul %[[DZ]], %[[XI]]
// CHECK-NEXT: %[[NEXTSUM:.*]] = dtl.add %[[SUM]], %[[DZ]]
// CHECK-NEXT: dtl.yield %[[DXPREV]], %[[NEXTSUM]], %[[DW]]
// CHECK:      return %{{.*}}, %[[B]]#2, %[[B]]#1
module attributes {dtl.model = @scan} {
  func.func @scan(%w: tensor<2x3xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                  %v: tensor<3xf32> {dtl.role = #dtl.role<param>, dtl.name = "v"},
                  %x: tensor<3xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> tensor<f32> {
    %h = dtl.repeat 2 carry(%x : tensor<3xf32>) stacked(%w : tensor<2x3xf32>) invariant(%v : tensor<3xf32>) -> (tensor<3xf32>) {
    ^bb0(%i: index, %xi: tensor<3xf32>, %wi: tensor<3xf32>, %vi: tensor<3xf32>):
      %y = dtl.mul %xi, %wi : tensor<3xf32>
      %z = dtl.add %y, %vi : tensor<3xf32>
      %t = dtl.tanh %z : tensor<3xf32>
      dtl.yield %t : tensor<3xf32>
    }
    %s = dtl.reduce_sum %h dims [0] : tensor<3xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}

// -----

// With `recompute` the forward saves only each layer's input x_i; the
// backward body first runs the layer again (ops marked dtl.recomputed) and
// reads tanh's result from there.

// CHECK-LABEL: func.func @scan_grad
// CHECK:      %[[F:.*]]:2 = dtl.repeat 2 recompute <all> carry(%arg2 : tensor<3xf32>) stacked(%arg0 : tensor<2x3xf32>) invariant(%arg1 : tensor<3xf32>) -> (tensor<3xf32>, tensor<2x3xf32>) {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[X:.*]]: tensor<3xf32>, %{{.*}}: tensor<3xf32>, %{{.*}}: tensor<3xf32>):
// CHECK:      dtl.yield %{{.*}}, %[[X]] : tensor<3xf32>, tensor<3xf32>
// CHECK:      dtl.repeat 2 reverse carry({{.*}}) stacked(%[[F]]#1, %arg0 : tensor<2x3xf32>, tensor<2x3xf32>) invariant(%arg1 : tensor<3xf32>)
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: tensor<3xf32>, %{{.*}}: tensor<3xf32>, %[[XI:.*]]: tensor<3xf32>, %[[WI:.*]]: tensor<3xf32>, %[[VI:.*]]: tensor<3xf32>):
// CHECK-NEXT: %[[Y:.*]] = dtl.mul %[[XI]], %[[WI]] {dtl.recomputed}
// CHECK-NEXT: %[[Z:.*]] = dtl.add %[[Y]], %[[VI]] {dtl.recomputed}
// CHECK-NEXT: %[[T:.*]] = dtl.tanh %[[Z]] {dtl.recomputed}
module attributes {dtl.model = @scan} {
  func.func @scan(%w: tensor<2x3xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                  %v: tensor<3xf32> {dtl.role = #dtl.role<param>, dtl.name = "v"},
                  %x: tensor<3xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> tensor<f32> {
    %h = dtl.repeat 2 recompute <all> carry(%x : tensor<3xf32>) stacked(%w : tensor<2x3xf32>) invariant(%v : tensor<3xf32>) -> (tensor<3xf32>) {
    ^bb0(%i: index, %xi: tensor<3xf32>, %wi: tensor<3xf32>, %vi: tensor<3xf32>):
      %y = dtl.mul %xi, %wi : tensor<3xf32>
      %z = dtl.add %y, %vi : tensor<3xf32>
      %t = dtl.tanh %z : tensor<3xf32>
      dtl.yield %t : tensor<3xf32>
    }
    %s = dtl.reduce_sum %h dims [0] : tensor<3xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}

// -----

// With `recompute <cheap>` only the cheap ops run again: tanh is
// recomputed from the saved product, which is saved in place of tanh's
// result; the GEMM is not run again.

// CHECK-LABEL: func.func @cheap_grad
// CHECK:      %[[F:.*]]:3 = dtl.repeat 2 recompute <cheap> carry(%arg1 : tensor<2x3xf32>) stacked(%arg0 : tensor<2x3x3xf32>) -> (tensor<2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>) {
// CHECK:      %[[Y:.*]] = dtl.matmul
// CHECK-NEXT: %[[T:.*]] = dtl.tanh %[[Y]]
// CHECK-NEXT: dtl.yield %[[T]], %{{.*}}, %{{.*}} : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
// CHECK:      dtl.repeat 2 reverse
// CHECK-NOT:  dtl.matmul {{.*}}dtl.recomputed
// CHECK:      dtl.tanh %{{.*}} {dtl.recomputed}
// CHECK-NOT:  dtl.matmul {{.*}}dtl.recomputed
// CHECK:      return
module attributes {dtl.model = @cheap} {
  func.func @cheap(%w: tensor<2x3x3xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                   %x: tensor<2x3xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> tensor<f32> {
    %h = dtl.repeat 2 recompute <cheap> carry(%x : tensor<2x3xf32>) stacked(%w : tensor<2x3x3xf32>) -> (tensor<2x3xf32>) {
    ^bb0(%i: index, %xi: tensor<2x3xf32>, %wi: tensor<3x3xf32>):
      %y = dtl.matmul %xi, %wi : tensor<2x3xf32>, tensor<3x3xf32> -> tensor<2x3xf32>
      %t = dtl.tanh %y : tensor<2x3xf32>
      dtl.yield %t : tensor<2x3xf32>
    }
    %s = dtl.reduce_sum %h dims [0, 1] : tensor<2x3xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}

// -----

// A repeat inside a repeat is the same rule applied to the body: the outer
// backward body holds the inner backward, which reads what the inner forward
// saved (stacked once per inner layer, and again per outer layer).

// CHECK-LABEL: func.func @nested_grad
// CHECK:      dtl.repeat 3 carry
// CHECK:        dtl.repeat 2 carry
// CHECK:      dtl.repeat 3 reverse carry
// CHECK:        dtl.repeat 2 reverse carry
// CHECK:      return %{{.*}}, %{{.*}} : tensor<f32>, tensor<3x2x4xf32>
module attributes {dtl.model = @nested} {
  func.func @nested(%w: tensor<3x2x4xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                    %x: tensor<4xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> tensor<f32> {
    %h = dtl.repeat 3 carry(%x : tensor<4xf32>) stacked(%w : tensor<3x2x4xf32>) -> (tensor<4xf32>) {
    ^bb0(%i: index, %xi: tensor<4xf32>, %wi: tensor<2x4xf32>):
      %g = dtl.repeat 2 carry(%xi : tensor<4xf32>) stacked(%wi : tensor<2x4xf32>) -> (tensor<4xf32>) {
      ^bb0(%j: index, %xj: tensor<4xf32>, %wj: tensor<4xf32>):
        %y = dtl.mul %xj, %wj : tensor<4xf32>
        %t = dtl.tanh %y : tensor<4xf32>
        dtl.yield %t : tensor<4xf32>
      }
      dtl.yield %g : tensor<4xf32>
    }
    %s = dtl.reduce_sum %h dims [0] : tensor<4xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}
