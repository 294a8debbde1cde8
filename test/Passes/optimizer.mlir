// RUN: dtl-opt %s --dtl-optimizer --split-input-file --verify-diagnostics | FileCheck %s

// AdamW: train_step takes params, their m and v, the inputs, lr and step; it
// returns the loss, the global gradient norm, the new params and new state.

// The gradient function stays for the gradient check of generated programs.
// CHECK-LABEL: func.func @m_grad
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg0: tensor<3x2xf32> {dtl.init = #dtl.init<zeros>, dtl.name = "w", dtl.role = #dtl.role<param>}
// CHECK-SAME: %arg1: tensor<3x2xf32> {dtl.name = "w.m", dtl.role = #dtl.role<opt_state>}
// CHECK-SAME: %arg2: tensor<3x2xf32> {dtl.name = "w.v", dtl.role = #dtl.role<opt_state>}
// CHECK-SAME: %arg3: tensor<4x3xf32> {dtl.name = "x", dtl.role = #dtl.role<input>}
// CHECK-SAME: %arg4: tensor<f32> {dtl.role = #dtl.role<lr>}, %arg5: tensor<f32> {dtl.role = #dtl.role<step>}
// CHECK-SAME: -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<f32> {dtl.role = #dtl.role<grad_norm>}, tensor<3x2xf32> {dtl.name = "w", dtl.role = #dtl.role<param>}, tensor<3x2xf32> {dtl.name = "w.m", dtl.role = #dtl.role<opt_state>}, tensor<3x2xf32> {dtl.name = "w.v", dtl.role = #dtl.role<opt_state>})
// CHECK:      %[[G:.*]] = dtl.matmul %arg3
// CHECK:      %[[SQ:.*]] = dtl.mul %[[G]], %[[G]]
// CHECK:      %[[SUM:.*]] = dtl.reduce_sum %[[SQ]] dims [0, 1]
// CHECK:      %[[NORM:.*]] = dtl.sqrt %[[SUM]]
// Without clip_grad_norm the scale only skips non-finite steps.
// CHECK:      %[[SCALE:.*]] = dtl.grad_scale %{{.*}}, %[[NORM]] {max_norm = 0.000000e+00 : f64}
// CHECK:      %[[P:.*]], %[[M:.*]], %[[V:.*]] = dtl.adamw_update %arg0, %[[G]], %arg1, %arg2, %arg4, %arg5, %[[SCALE]]
// CHECK-SAME: beta1 = 8.000000e-01 : f64, beta2 = 0.98999999999999999 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64
// CHECK:      return %{{.*}}, %[[NORM]], %[[P]], %[[M]], %[[V]]
module attributes {dtl.model = @m, dtl.optimizer = #dtl.optimizer<adamw, beta1 = 0.8, beta2 = 0.99, weight_decay = 0.1>} {
  func.func @m_grad(%w: tensor<3x2xf32> {dtl.role = #dtl.role<param>, dtl.name = "w", dtl.init = #dtl.init<zeros>},
                    %x: tensor<4x3xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> (tensor<f32>, tensor<3x2xf32>) {
    %0 = dtl.constant 1.0 : tensor<f32>
    %1 = dtl.constant 1.0 : tensor<4x2xf32>
    %2 = dtl.matmul %x, %1 {transpose_lhs} : tensor<4x3xf32>, tensor<4x2xf32> -> tensor<3x2xf32>
    return %0, %2 : tensor<f32>, tensor<3x2xf32>
  }
}

// -----

// SGD with momentum keeps one buffer per param; clip_grad_norm clips by
// the global norm, through the scale every update takes.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: dtl.name = "w.momentum", dtl.role = #dtl.role<opt_state>
// CHECK:      %[[NORM:.*]] = dtl.sqrt
// CHECK:      %[[SCALE:.*]] = dtl.grad_scale %{{.*}}, %[[NORM]] {max_norm = 1.500000e+00 : f64}
// CHECK:      dtl.sgd_update %arg0, %{{.*}}, %arg1, %arg2, %[[SCALE]] {momentum = 9.000000e-01 : f64, weight_decay = 0.000000e+00 : f64}
module attributes {dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd, momentum = 0.9>,
                   dtl.train = #dtl.train<clip_grad_norm = 1.5>} {
  func.func @m_grad(%w: tensor<2xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"}) -> (tensor<f32>, tensor<2xf32>) {
    %0 = dtl.constant 1.0 : tensor<f32>
    return %0, %w : tensor<f32>, tensor<2xf32>
  }
}

// -----

// Weight decay per param: dtl.decay says, and without it params of rank 2
// or more decay. The updated params do not carry the mark.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<f32> {dtl.role = #dtl.role<grad_norm>}, tensor<3x2xf32> {dtl.name = "w", dtl.role = #dtl.role<param>}, tensor<2xf32> {dtl.name = "b", dtl.role = #dtl.role<param>}, tensor<2xf32> {dtl.name = "c", dtl.role = #dtl.role<param>}, tensor<4x2xf32> {dtl.name = "d", dtl.role = #dtl.role<param>}
// CHECK:      dtl.adamw_update %arg0, {{.*}} weight_decay = 0.000000e+00 : f64
// CHECK:      dtl.adamw_update %arg1, {{.*}} weight_decay = 1.000000e-01 : f64
// CHECK:      dtl.adamw_update %arg2, {{.*}} weight_decay = 0.000000e+00 : f64
// CHECK:      dtl.adamw_update %arg3, {{.*}} weight_decay = 1.000000e-01 : f64
module attributes {dtl.model = @m, dtl.optimizer = #dtl.optimizer<adamw, weight_decay = 0.1>} {
  func.func @m_grad(%w: tensor<3x2xf32> {dtl.role = #dtl.role<param>, dtl.name = "w", dtl.decay = false},
                    %b: tensor<2xf32> {dtl.role = #dtl.role<param>, dtl.name = "b", dtl.decay = true},
                    %c: tensor<2xf32> {dtl.role = #dtl.role<param>, dtl.name = "c"},
                    %d: tensor<4x2xf32> {dtl.role = #dtl.role<param>, dtl.name = "d"})
      -> (tensor<f32>, tensor<3x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<4x2xf32>) {
    %0 = dtl.constant 1.0 : tensor<f32>
    return %0, %w, %b, %c, %d : tensor<f32>, tensor<3x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<4x2xf32>
  }
}

// -----

// Gradient accumulation: the step's input holds 2 micro-batches, [8, 3]
// viewed as [4, 2, 3] (a rank's rows stay its own) and transposed to
// [2, 4, 3], the accumulating loop's stacked operand; the params are
// invariant; the summed loss and gradient are divided by 2.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg2: tensor<8x3xf32> {dtl.name = "x", dtl.role = #dtl.role<input>}
// CHECK:      %[[V:.*]] = dtl.reshape %arg2 : tensor<8x3xf32> -> tensor<4x2x3xf32>
// CHECK-NEXT: %[[T:.*]] = dtl.transpose %[[V]] permutation [1, 0, 2] : tensor<4x2x3xf32> -> tensor<2x4x3xf32>
// CHECK-NEXT: %[[S:.*]]:2 = dtl.repeat 2 accumulate stacked(%[[T]] : tensor<2x4x3xf32>) invariant(%arg0 : tensor<3x2xf32>) -> (tensor<f32>, tensor<3x2xf32>)
// CHECK:      dtl.yield
// CHECK:      %[[HALF:.*]] = dtl.constant 5.000000e-01 : tensor<f32>
// CHECK-NEXT: %[[LOSS:.*]] = dtl.mul %[[S]]#0, %[[HALF]]
// CHECK:      %[[G:.*]] = dtl.mul %[[S]]#1
// CHECK:      dtl.sgd_update %arg0, %[[G]]
module attributes {dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd>, dtl.train = #dtl.train<accumulate = 2>} {
  func.func @m_grad(%w: tensor<3x2xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                    %x: tensor<4x3xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> (tensor<f32>, tensor<3x2xf32>) {
    %0 = dtl.constant 1.0 : tensor<f32>
    %1 = dtl.matmul %x, %w : tensor<4x3xf32>, tensor<3x2xf32> -> tensor<4x2xf32>
    %2 = dtl.matmul %x, %1 {transpose_lhs} : tensor<4x3xf32>, tensor<4x2xf32> -> tensor<3x2xf32>
    return %0, %2 : tensor<f32>, tensor<3x2xf32>
  }
}

// -----

// expected-error@+1 {{needs @m_grad (run dtl-autodiff)}}
module attributes {dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd>} {
}

// -----

// ZeRO splits over the data axes (those that split an input's batch), on
// each tensor's first unsplit dimension they divide. Stage 1: the optimizer
// state only; the param and its gradient stay replicated.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg0: tensor<8x6xf32> {dtl.name = "w", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, {{\[}}[], []]>}
// CHECK-SAME: %arg1: tensor<8x6xf32> {dtl.name = "w.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, {{\[}}[0], []]>}
// CHECK-NOT:  dtl.sharding_constraint
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>, dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd>, dtl.train = #dtl.train<zero = 1>} {
  shard.grid @grid(shape = 2)
  func.func @m_grad(%w: tensor<8x6xf32> {dtl.role = #dtl.role<param>, dtl.name = "w", dtl.sharding = #dtl.sharding<@grid, [[], []]>},
                    %x: tensor<4x8xf32> {dtl.role = #dtl.role<input>, dtl.name = "x", dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<8x6xf32> {dtl.role = #dtl.role<grad>, dtl.name = "w"}) {
    %0 = dtl.constant 1.0 : tensor<f32>
    return %0, %w : tensor<f32>, tensor<8x6xf32>
  }
}

// -----

// Stage 2: the gradients too, as a constraint the partitioner meets with a
// reduce-scatter. A dimension already split (here over tp) is skipped.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: dtl.name = "w.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, {{\[}}[1], [0]]>
// CHECK:      %[[G:.*]] = dtl.sharding_constraint %arg0 : tensor<8x6xf32> to #dtl.sharding<@grid, {{\[}}[1], [0]]>
// CHECK:      dtl.sgd_update %arg0, %[[G]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2, "dp" = 2]>, dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd>, dtl.train = #dtl.train<zero = 2>} {
  shard.grid @grid(shape = 2x2)
  func.func @m_grad(%w: tensor<8x6xf32> {dtl.role = #dtl.role<param>, dtl.name = "w", dtl.sharding = #dtl.sharding<@grid, [[], [0]]>},
                    %x: tensor<4x8xf32> {dtl.role = #dtl.role<input>, dtl.name = "x", dtl.sharding = #dtl.sharding<@grid, [[1], []]>})
      -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<8x6xf32> {dtl.role = #dtl.role<grad>, dtl.name = "w"}) {
    %0 = dtl.constant 1.0 : tensor<f32>
    return %0, %w : tensor<f32>, tensor<8x6xf32>
  }
}

// -----

// Stage 3: params are stored split in every function, and so are the
// gradients the gradient function returns; where a param is used it is
// constrained back to its own layout, so it is gathered before use (FSDP).
// CHECK-LABEL: func.func @m(%arg0: tensor<8x6xf32> {dtl.name = "w", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, {{\[}}[0], []]>}
// CHECK-NEXT: %[[W:.*]] = dtl.sharding_constraint %arg0 : tensor<8x6xf32> to #dtl.sharding<@grid, {{\[}}[], []]>
// CHECK:      dtl.reduce_sum %[[W]]
// CHECK-LABEL: func.func @m_grad(%arg0: tensor<8x6xf32> {dtl.name = "w", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, {{\[}}[0], []]>}
// CHECK-SAME: tensor<8x6xf32> {dtl.name = "w", dtl.role = #dtl.role<grad>, dtl.sharding = #dtl.sharding<@grid, {{\[}}[0], []]>}
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg0: tensor<8x6xf32> {dtl.name = "w", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, {{\[}}[0], []]>}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>, dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd>, dtl.train = #dtl.train<zero = 3>} {
  shard.grid @grid(shape = 2)
  func.func @m(%w: tensor<8x6xf32> {dtl.role = #dtl.role<param>, dtl.name = "w", dtl.sharding = #dtl.sharding<@grid, [[], []]>},
               %x: tensor<4x8xf32> {dtl.role = #dtl.role<input>, dtl.name = "x", dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<f32> {dtl.role = #dtl.role<loss>}) {
    %0 = dtl.reduce_sum %w dims [0, 1] : tensor<8x6xf32> -> tensor<f32>
    return %0 : tensor<f32>
  }
  func.func @m_grad(%w: tensor<8x6xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                    %x: tensor<4x8xf32> {dtl.role = #dtl.role<input>, dtl.name = "x", dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<8x6xf32> {dtl.role = #dtl.role<grad>, dtl.name = "w"}) {
    %0 = dtl.constant 1.0 : tensor<f32>
    return %0, %w : tensor<f32>, tensor<8x6xf32>
  }
}

// -----

// expected-error@+1 {{ZeRO shards over the data axes, but no input splits its batch dimension over a mesh axis}}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>, dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd>, dtl.train = #dtl.train<zero = 1>} {
  shard.grid @grid(shape = 2)
  func.func @m_grad(%w: tensor<8xf32> {dtl.role = #dtl.role<param>, dtl.name = "w"},
                    %x: tensor<4x8xf32> {dtl.role = #dtl.role<input>, dtl.name = "x"}) -> (tensor<f32>, tensor<8xf32>) {
    %0 = dtl.constant 1.0 : tensor<f32>
    return %0, %w : tensor<f32>, tensor<8xf32>
  }
}
