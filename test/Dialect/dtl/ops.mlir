// RUN: dtl-opt %s | FileCheck %s
// RUN: dtl-opt %s | dtl-opt | FileCheck %s
// RUN: dtl-opt %s --mlir-print-op-generic | dtl-opt | FileCheck %s

// Every op of the dialect and every attribute of the contract, printed and
// parsed back unchanged (the second and third runs reparse the output).

// CHECK-LABEL: module attributes
// CHECK-SAME:  dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>
// CHECK-SAME:  dtl.model = @model
// CHECK-SAME:  dtl.optimizer = #dtl.optimizer<adamw, lr = 0.0003, weight_decay = 0.1>
// CHECK-SAME:  dtl.target = #dtl.target<cuda>
// CHECK-SAME:  dtl.train = #dtl.train<data = <tokens, inputs = ["idx", "targets"], files = ["train.bin"]>, steps = 50, schedule = warmup_cosine, warmup = 5, min_lr = 1.0e-05, zero = 1, precision = bf16>
module attributes {
    dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>,
    dtl.model = @model,
    dtl.optimizer = #dtl.optimizer<adamw, lr = 3.0e-4, weight_decay = 0.1>,
    dtl.target = #dtl.target<cuda>,
    dtl.train = #dtl.train<data = <tokens, inputs = ["idx", "targets"], files = ["train.bin"]>, steps = 50, schedule = warmup_cosine, warmup = 5, min_lr = 1.0e-5, zero = 1, precision = bf16>} {
  shard.grid @grid(shape = 2x2)

  // CHECK-LABEL: func.func @model
  // CHECK-SAME:  %arg0: tensor<16x8xf32> {dtl.global_type = tensor<16x16xf32>, dtl.init = #dtl.init<normal(0.0, 0.02)>, dtl.name = "w", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, {{\[\[}}], [1]]>}
  // CHECK-SAME:  %arg1: tensor<4x16xf32> {dtl.name = "x", dtl.role = #dtl.role<input>, dtl.sharding = #dtl.sharding<@grid, {{\[\[}}0], []]>}
  // CHECK-SAME:  (tensor<f32> {dtl.role = #dtl.role<loss>})
  // CHECK-SAME:  attributes {dtl.arena_bytes = 1024 : i64}
  func.func @model(%w: tensor<16x8xf32> {dtl.role = #dtl.role<param>, dtl.name = "w", dtl.init = #dtl.init<normal(0.0, 0.02)>,
                                         dtl.sharding = #dtl.sharding<@grid, [[], [1]]>, dtl.global_type = tensor<16x16xf32>},
                   %x: tensor<4x16xf32> {dtl.role = #dtl.role<input>, dtl.name = "x", dtl.sharding = #dtl.sharding<@grid, [[0], []]>})
      -> (tensor<f32> {dtl.role = #dtl.role<loss>}) attributes {dtl.arena_bytes = 1024 : i64} {
    // CHECK: dtl.constant 5.000000e-01 : tensor<4x8xf32>
    %half = dtl.constant 0.5 : tensor<4x8xf32>
    // CHECK: dtl.matmul %arg1, %arg0 {dtl.place = [#dtl.place<arena 64>], dtl.shardings = [#dtl.sharding<@grid, {{\[\[}}0], [1]]>]} : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
    %y = dtl.matmul %x, %w {dtl.place = [#dtl.place<arena 64>], dtl.shardings = [#dtl.sharding<@grid, [[0], [1]]>]} : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
    // CHECK: dtl.add {{.*}} : tensor<4x8xf32>
    // CHECK: dtl.sub {{.*}} : tensor<4x8xf32>
    // CHECK: dtl.mul {{.*}} : tensor<4x8xf32>
    // CHECK: dtl.div {{.*}} : tensor<4x8xf32>
    %a = dtl.add %y, %half : tensor<4x8xf32>
    %s = dtl.sub %a, %y : tensor<4x8xf32>
    %m = dtl.mul %s, %a : tensor<4x8xf32>
    %d = dtl.div %m, %half : tensor<4x8xf32>
    // CHECK: dtl.neg
    // CHECK: dtl.relu
    // CHECK: dtl.exp
    // CHECK: dtl.log
    // CHECK: dtl.tanh
    // CHECK: dtl.sqrt
    // CHECK: dtl.gelu
    // CHECK: dtl.relu_grad
    // CHECK: dtl.gelu_grad
    %n = dtl.neg %d : tensor<4x8xf32>
    %r = dtl.relu %n : tensor<4x8xf32>
    %e = dtl.exp %r : tensor<4x8xf32>
    %l = dtl.log %e : tensor<4x8xf32>
    %t = dtl.tanh %l : tensor<4x8xf32>
    %q = dtl.sqrt %t : tensor<4x8xf32>
    %g = dtl.gelu %q : tensor<4x8xf32>
    %rg = dtl.relu_grad %g, %q : tensor<4x8xf32>
    %gg = dtl.gelu_grad %rg, %q : tensor<4x8xf32>
    // CHECK: dtl.sharding_constraint %{{.*}} : tensor<4x8xf32> to #dtl.sharding<@grid, {{\[\[}}0], []], partial [1]>
    %c = dtl.sharding_constraint %gg : tensor<4x8xf32> to #dtl.sharding<@grid, [[0], []], partial [1]>
    // CHECK: dtl.sharding_constraint %{{.*}} : tensor<4x8xf32> to #dtl.sharding<@grid, {{\[\[}}0], []]> {storage}
    %stored = dtl.sharding_constraint %gg : tensor<4x8xf32> to #dtl.sharding<@grid, [[0], []]> {storage}
    // CHECK: dtl.softmax %{{.*}} : tensor<4x8xf32>
    // CHECK: dtl.softmax_grad
    %sm = dtl.softmax %c : tensor<4x8xf32>
    %smg = dtl.softmax_grad %sm, %c : tensor<4x8xf32>
    // CHECK: dtl.reduce_sum %{{.*}} dims [1] : tensor<4x8xf32> -> tensor<4xf32>
    // CHECK: dtl.broadcast %{{.*}} dims [0] : tensor<4xf32> -> tensor<4x8xf32>
    %rs = dtl.reduce_sum %smg dims [1] : tensor<4x8xf32> -> tensor<4xf32>
    %b = dtl.broadcast %rs dims [0] : tensor<4xf32> -> tensor<4x8xf32>
    // CHECK: dtl.reshape %{{.*}} : tensor<4x8xf32> -> tensor<32xf32>
    // CHECK: dtl.transpose %{{.*}} permutation [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>
    // CHECK: dtl.split %{{.*}} dim 1 : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x6xf32>
    // CHECK: dtl.split %{{.*}} dim 1 interleave 2 : tensor<4x8xf32> -> tensor<4x4xf32>, tensor<4x4xf32>
    // CHECK: dtl.concat %{{.*}}, %{{.*}} dim 1 interleave 2 : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x8xf32>
    %flat = dtl.reshape %b : tensor<4x8xf32> -> tensor<32xf32>
    %tr = dtl.transpose %b permutation [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>
    %s0, %s1 = dtl.split %b dim 1 : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x6xf32>
    %p0, %p1 = dtl.split %b dim 1 interleave 2 : tensor<4x8xf32> -> tensor<4x4xf32>, tensor<4x4xf32>
    %joined = dtl.concat %p0, %p1 dim 1 interleave 2 : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x8xf32>
    // CHECK: dtl.matmul_bias %{{.*}}, %{{.*}}, %{{.*}} {transpose_rhs} : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<4x4xf32>
    %bias = dtl.reduce_sum %tr dims [0] : tensor<8x4xf32> -> tensor<4xf32>
    %mb = dtl.matmul_bias %b, %b, %bias {transpose_rhs} : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<4x4xf32>
    %loss = dtl.reduce_sum %mb dims [0, 1] : tensor<4x4xf32> -> tensor<f32>
    return %loss : tensor<f32>
  }

  // CHECK-LABEL: func.func @transformer_ops
  func.func @transformer_ops(%ids: tensor<2x4xi32>, %table: tensor<16x8xf32>, %w: tensor<8xf32>, %step: tensor<f32>, %layer: index)
      -> (tensor<f32>, tensor<2x4xf32>, tensor<16x8xf32>) {
    // CHECK: dtl.embedding %arg1, %arg0 : tensor<16x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
    %x = dtl.embedding %table, %ids : tensor<16x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
    // CHECK: dtl.layernorm %{{.*}}, %arg2, %arg2 {eps = 1.000000e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>, tensor<2x4xf32>
    %h, %mean, %rstd = dtl.layernorm %x, %w, %w {eps = 1.0e-5 : f64} : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>, tensor<2x4xf32>
    // CHECK: dtl.layernorm_grad_input
    // CHECK: dtl.layernorm_grad_params
    %dx = dtl.layernorm_grad_input %x, %w, %mean, %rstd, %h : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4xf32>
    %dw, %db = dtl.layernorm_grad_params %x, %mean, %rstd, %dx : tensor<2x4x8xf32>, tensor<2x4xf32> -> tensor<8xf32>
    // CHECK: dtl.causal_attention %{{.*}}, %{{.*}}, %{{.*}} {head_dim = 4 : i64} : tensor<2x4x8xf32> -> tensor<2x2x4xf32>
    // CHECK: dtl.causal_attention_grad
    %att, %lse = dtl.causal_attention %dx, %dx, %dx {head_dim = 4 : i64} : tensor<2x4x8xf32> -> tensor<2x2x4xf32>
    %dq, %dk, %dv = dtl.causal_attention_grad %dx, %dx, %dx, %lse, %att {head_dim = 4 : i64} : tensor<2x4x8xf32>, tensor<2x2x4xf32>
    // CHECK: dtl.dropout %{{.*}}, %arg3 layers(%arg4) {layer_counts = array<i64: 3>, rate = 1.000000e-01 : f64, stream = 2 : i64} : tensor<2x4x8xf32>, tensor<f32>
    %drop = dtl.dropout %dq, %step layers(%layer) {layer_counts = array<i64: 3>, rate = 0.1 : f64, stream = 2 : i64} : tensor<2x4x8xf32>, tensor<f32>
    // CHECK: dtl.embedding_grad %arg0, %{{.*}} : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
    %dtable = dtl.embedding_grad %ids, %drop : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
    // CHECK: dtl.cross_entropy %{{.*}}, %arg0 : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
    // CHECK: dtl.cross_entropy_grad
    // CHECK: dtl.correct
    %ce = dtl.cross_entropy %drop, %ids : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
    %dlogits = dtl.cross_entropy_grad %drop, %ids, %ce : tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<2x4xf32> -> tensor<2x4x8xf32>
    %ok = dtl.correct %dlogits, %ids : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
    %loss = dtl.reduce_sum %ce dims [0, 1] : tensor<2x4xf32> -> tensor<f32>
    return %loss, %ok, %dtable : tensor<f32>, tensor<2x4xf32>, tensor<16x8xf32>
  }

  // The local ops of vocab parallelism (after dtl-partition).
  // CHECK-LABEL: func.func @vocab_parallel_ops
  // CHECK: dtl.embedding %arg1, %arg0 {row_axes = array<i16: 1>} : tensor<8x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
  // CHECK: dtl.embedding_grad %arg0, %{{.*}} {row_axes = array<i16: 1>} : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<8x8xf32>
  // CHECK: %[[P:.*]] = dtl.cross_entropy_partial %{{.*}}, %arg0 {class_axes = array<i16: 1>} : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<2x2x4xf32>
  // CHECK: %[[L:.*]], %[[LSE:.*]] = dtl.cross_entropy_combine %{{.*}}, %arg0 : tensor<4x2x4xf32>, tensor<2x4xi32> -> tensor<2x4xf32>, tensor<2x4xf32>
  // CHECK: dtl.cross_entropy_grad %{{.*}}, %arg0, %[[L]] lse %[[LSE]] {class_axes = array<i16: 1>} : tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4x8xf32>
  // CHECK: dtl.argmax_partial %{{.*}} {class_axes = array<i16: 1>} : tensor<2x4x8xf32> -> tensor<2x2x4xf32>
  // CHECK: dtl.correct_combine %arg2, %arg0 : tensor<4x2x4xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
  func.func @vocab_parallel_ops(%ids: tensor<2x4xi32>, %table: tensor<8x8xf32>, %parts: tensor<4x2x4xf32>)
      -> (tensor<2x2x4xf32>, tensor<8x8xf32>, tensor<2x4x8xf32>) {
    %x = dtl.embedding %table, %ids {row_axes = array<i16: 1>} : tensor<8x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
    %dtable = dtl.embedding_grad %ids, %x {row_axes = array<i16: 1>} : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<8x8xf32>
    %p = dtl.cross_entropy_partial %x, %ids {class_axes = array<i16: 1>} : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<2x2x4xf32>
    %ce, %lse = dtl.cross_entropy_combine %parts, %ids : tensor<4x2x4xf32>, tensor<2x4xi32> -> tensor<2x4xf32>, tensor<2x4xf32>
    %d = dtl.cross_entropy_grad %x, %ids, %ce lse %lse {class_axes = array<i16: 1>} : tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4x8xf32>
    %m = dtl.argmax_partial %x {class_axes = array<i16: 1>} : tensor<2x4x8xf32> -> tensor<2x2x4xf32>
    %ok = dtl.correct_combine %parts, %ids : tensor<4x2x4xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
    return %p, %dtable, %d : tensor<2x2x4xf32>, tensor<8x8xf32>, tensor<2x4x8xf32>
  }

  // CHECK-LABEL: func.func @updates
  // CHECK: %[[SCALE:.*]] = dtl.grad_scale %arg4, %arg5 {max_norm = 1.000000e+00 : f64} : tensor<f32>
  // CHECK: dtl.sgd_update %arg0, %arg1, %arg2, %arg4, %[[SCALE]] {dtl.in_place, momentum = 9.000000e-01 : f64, weight_decay = 0.000000e+00 : f64} : tensor<8xf32>, tensor<f32>
  // CHECK: dtl.adamw_update %arg0, %arg1, %arg2, %arg3, %arg4, %arg5, %[[SCALE]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64} : tensor<8xf32>, tensor<f32>
  func.func @updates(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<f32>)
      -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
    %scale = dtl.grad_scale %lr, %step {max_norm = 1.0 : f64} : tensor<f32>
    %p1, %b1 = dtl.sgd_update %p, %g, %m, %lr, %scale {momentum = 0.9 : f64, weight_decay = 0.0 : f64, dtl.in_place} : tensor<8xf32>, tensor<f32>
    %p2, %m2, %v2 = dtl.adamw_update %p, %g, %m, %v, %lr, %step, %scale {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.1 : f64} : tensor<8xf32>, tensor<f32>
    return %p1, %b1, %p2, %m2, %v2 : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
  }

  // An accumulating loop sums what it yields; i32 inputs transpose.
  // CHECK-LABEL: func.func @accumulate
  // CHECK:       dtl.transpose %arg0 permutation [1, 0, 2] : tensor<4x2x3xi32> -> tensor<2x4x3xi32>
  // CHECK:       dtl.repeat 2 accumulate stacked(%{{.*}} : tensor<2x4x3xi32>) invariant(%arg1 : tensor<8xf32>) -> (tensor<8xf32>) {
  func.func @accumulate(%ids: tensor<4x2x3xi32>, %w: tensor<8xf32>) -> tensor<8xf32> {
    %t = dtl.transpose %ids permutation [1, 0, 2] : tensor<4x2x3xi32> -> tensor<2x4x3xi32>
    %sum = dtl.repeat 2 accumulate stacked(%t : tensor<2x4x3xi32>) invariant(%w : tensor<8xf32>) -> (tensor<8xf32>) {
    ^bb0(%i: index, %idi: tensor<4x3xi32>, %wi: tensor<8xf32>):
      dtl.yield %wi : tensor<8xf32>
    }
    return %sum : tensor<8xf32>
  }

  // CHECK-LABEL: func.func @regions
  // CHECK:       dtl.repeat 3 reverse carry(%arg0 : tensor<4x8xf32>) stacked(%arg1 : tensor<3x8x8xf32>) invariant(%arg2 : tensor<8xf32>) -> (tensor<4x8xf32>, tensor<3x4x8xf32>) {
  // CHECK-NEXT:  ^bb0(%{{.*}}: index, %{{.*}}: tensor<4x8xf32>, %{{.*}}: tensor<8x8xf32>, %{{.*}}: tensor<8xf32>):
  // CHECK:         dtl.yield %{{.*}}, %{{.*}} : tensor<4x8xf32>, tensor<4x8xf32>
  // CHECK-NEXT:  }
  // CHECK:       dtl.fused(%{{.*}}, %arg0) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK-NEXT:  ^bb0(%{{.*}}: tensor<f32>, %{{.*}}: tensor<f32>):
  // CHECK:         dtl.yield %{{.*}} : tensor<f32>
  // CHECK-NEXT:  } attributes {dtl.place = [#dtl.place<slice 1>]}
  // CHECK:       shard.all_reduce {{.*}} {dtl.slot = 3 : i64}
  // CHECK-NEXT:  dtl.collective_wait %{{.*}} reads(%{{.*}} : tensor<4x8xf32>) {dtl.place = [#dtl.place<view>]} : tensor<4x8xf32>
  func.func @regions(%x: tensor<4x8xf32>, %w: tensor<3x8x8xf32>, %bias: tensor<8xf32>) -> (tensor<4x8xf32>, tensor<3x4x8xf32>) {
    %h, %saved = dtl.repeat 3 reverse carry(%x : tensor<4x8xf32>) stacked(%w : tensor<3x8x8xf32>) invariant(%bias : tensor<8xf32>)
        -> (tensor<4x8xf32>, tensor<3x4x8xf32>) {
    ^bb0(%i: index, %xi: tensor<4x8xf32>, %wi: tensor<8x8xf32>, %bi: tensor<8xf32>):
      %y = dtl.matmul_bias %xi, %wi, %bi : tensor<4x8xf32>, tensor<8x8xf32>, tensor<8xf32> -> tensor<4x8xf32>
      dtl.yield %y, %xi : tensor<4x8xf32>, tensor<4x8xf32>
    }
    %f = dtl.fused(%h, %x) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32> {
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = dtl.add %a, %b : tensor<f32>
      dtl.yield %s : tensor<f32>
    } attributes {dtl.place = [#dtl.place<slice 1>]}
    %r = shard.all_reduce %f on @grid grid_axes = [0] {dtl.slot = 3 : i64} : tensor<4x8xf32> -> tensor<4x8xf32>
    %rw = dtl.collective_wait %r reads(%f : tensor<4x8xf32>) {dtl.place = [#dtl.place<view>]} : tensor<4x8xf32>
    return %rw, %saved : tensor<4x8xf32>, tensor<3x4x8xf32>
  }
}
