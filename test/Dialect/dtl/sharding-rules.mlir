// RUN: dtl-opt %s --dtl-test-sharding-rules | FileCheck %s

// Each op's sharding rule on its own (dtl-test-sharding-rules writes it on
// the op): the loop indexing each operand and result dimension (1: none,
// never split), the loops that sum (split: partial sums) or must stay
// whole, the operands a partial sum flows through unreduced, and whether
// partial sums of all operands do (additive). A matmul_bias is made after
// partitioning and has no rule.

module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @rules(%x: tensor<4x8xf32>, %w: tensor<8x6xf32>, %b: tensor<6xf32>, %v: tensor<8xf32>,
                   %ids: tensor<2x4xi32>, %table: tensor<16x8xf32>, %t: tensor<2x4x8xf32>,
                   %lr: tensor<f32>, %i: index) {
    // CHECK: dtl.constant {{.*}}sharding_rule = "() -> ([i, j]) sum={} whole={} linear={}"
    %c = dtl.constant 0.5 : tensor<4x8xf32>
    // CHECK: dtl.matmul {{.*}}sharding_rule = "([i, k], [k, j]) -> ([i, j]) sum={k} whole={} linear={0, 1}"
    %mm = dtl.matmul %x, %w : tensor<4x8xf32>, tensor<8x6xf32> -> tensor<4x6xf32>
    // CHECK: dtl.matmul {{.*}}sharding_rule = "([k, i], [k, j]) -> ([i, j]) sum={k} whole={} linear={0, 1}"
    %mt = dtl.matmul %x, %x {transpose_lhs} : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<8x8xf32>
    // CHECK: dtl.matmul_bias
    // CHECK-NOT: sharding_rule
    // CHECK-SAME: {{$}}
    %mb = dtl.matmul_bias %t, %w, %b : tensor<2x4x8xf32>, tensor<8x6xf32>, tensor<6xf32> -> tensor<2x4x6xf32>
    // CHECK: dtl.add {{.*}}sharding_rule = "([i, j], [i, j]) -> ([i, j]) sum={} whole={} linear={} additive"
    %add = dtl.add %x, %c : tensor<4x8xf32>
    // CHECK: dtl.sub {{.*}}sharding_rule = "([i, j], [i, j]) -> ([i, j]) sum={} whole={} linear={} additive"
    %sub = dtl.sub %x, %c : tensor<4x8xf32>
    // CHECK: dtl.mul {{.*}}sharding_rule = "([i, j], [i, j]) -> ([i, j]) sum={} whole={} linear={0, 1}"
    %mul = dtl.mul %x, %c : tensor<4x8xf32>
    // CHECK: dtl.div {{.*}}sharding_rule = "([i, j], [i, j]) -> ([i, j]) sum={} whole={} linear={0}"
    %div = dtl.div %x, %c : tensor<4x8xf32>
    // CHECK: dtl.neg {{.*}}sharding_rule = "([i, j]) -> ([i, j]) sum={} whole={} linear={0}"
    %neg = dtl.neg %x : tensor<4x8xf32>
    // CHECK: dtl.exp {{.*}}sharding_rule = "([i, j]) -> ([i, j]) sum={} whole={} linear={}"
    %exp = dtl.exp %x : tensor<4x8xf32>
    // CHECK: dtl.relu_grad {{.*}}sharding_rule = "([i, j], [i, j]) -> ([i, j]) sum={} whole={} linear={}"
    %rg = dtl.relu_grad %x, %c : tensor<4x8xf32>
    // CHECK: dtl.sharding_constraint {{.*}}sharding_rule = "([i, j]) -> ([i, j]) sum={} whole={} linear={}"
    %sc = dtl.sharding_constraint %x : tensor<4x8xf32> to #dtl.sharding<@grid, [[0], []]>
    // CHECK: dtl.softmax {{.*}}sharding_rule = "([i, j]) -> ([i, j]) sum={} whole={j} linear={}"
    %sm = dtl.softmax %x : tensor<4x8xf32>
    // CHECK: dtl.softmax_grad {{.*}}sharding_rule = "([i, j], [i, j]) -> ([i, j]) sum={} whole={j} linear={}"
    %smg = dtl.softmax_grad %sm, %x : tensor<4x8xf32>
    // CHECK: dtl.reduce_sum {{.*}}sharding_rule = "([i, j]) -> ([j]) sum={i} whole={} linear={0}"
    %rs = dtl.reduce_sum %x dims [0] : tensor<4x8xf32> -> tensor<8xf32>
    // CHECK: dtl.broadcast {{.*}}sharding_rule = "([j]) -> ([i, j]) sum={} whole={} linear={0}"
    %bc = dtl.broadcast %v dims [1] : tensor<8xf32> -> tensor<4x8xf32>
    // CHECK: dtl.reshape {{.*}}sharding_rule = "([i, 1, j]) -> ([i, j]) sum={} whole={} linear={0}"
    %rh = dtl.reshape %t : tensor<2x4x8xf32> -> tensor<8x8xf32>
    // CHECK: dtl.transpose {{.*}}sharding_rule = "([j, i]) -> ([i, j]) sum={} whole={} linear={0}"
    %tr = dtl.transpose %x permutation [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>
    // The pieces' dimension is whole, or split only into shards of whole
    // interleaved blocks.
    // CHECK: dtl.split {{.*}}sharding_rule = "([i, j]) -> ([i, j], [i, j]) sum={} whole={j} shards={j | 1} linear={0} additive"
    %s0, %s1 = dtl.split %x dim 1 : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x6xf32>
    // CHECK: dtl.split {{.*}}sharding_rule = "([i, j]) -> ([i, j], [i, j]) sum={} whole={} shards={j | 2} linear={0} additive"
    %i0, %i1 = dtl.split %x dim 1 interleave 2 : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x6xf32>
    // CHECK: dtl.concat {{.*}}sharding_rule = "([i, j], [i, j]) -> ([i, j]) sum={} whole={} shards={j | 2} linear={0, 1} additive"
    %cc = dtl.concat %i0, %i1 dim 1 interleave 2 : tensor<4x2xf32>, tensor<4x6xf32> -> tensor<4x8xf32>
    // CHECK: dtl.embedding {{.*}}sharding_rule = "([l, k], [i, j]) -> ([i, j, k]) sum={l} whole={} linear={}"
    %emb = dtl.embedding %table, %ids : tensor<16x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
    // CHECK: dtl.embedding_grad {{.*}}sharding_rule = "([i, j], [i, j, k]) -> ([l, k]) sum={i, j} whole={} linear={}"
    %demb = dtl.embedding_grad %ids, %t : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
    // CHECK: dtl.layernorm {{.*}}sharding_rule = "([i, j, k], [k], [k]) -> ([i, j, k], [i, j], [i, j]) sum={} whole={k} linear={}"
    %ln:3 = dtl.layernorm %t, %v, %v {eps = 1.0e-5 : f64} : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>, tensor<2x4xf32>
    // CHECK: dtl.layernorm_grad_input {{.*}}sharding_rule = "([i, j, k], [k], [i, j], [i, j], [i, j, k]) -> ([i, j, k]) sum={} whole={k} linear={}"
    %lgi = dtl.layernorm_grad_input %t, %v, %ln#1, %ln#2, %t : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4xf32>
    // CHECK: dtl.layernorm_grad_params {{.*}}sharding_rule = "([i, j, k], [i, j], [i, j], [i, j, k]) -> ([k], [k]) sum={i, j} whole={k} linear={}"
    %lgp:2 = dtl.layernorm_grad_params %t, %ln#1, %ln#2, %t : tensor<2x4x8xf32>, tensor<2x4xf32> -> tensor<8xf32>
    // CHECK: dtl.causal_attention {{.*}}sharding_rule = "([i, j, k], [i, j, k], [i, j, k]) -> ([i, j, k], [i, k, j]) sum={} whole={j} linear={}"
    %att:2 = dtl.causal_attention %t, %t, %t {head_dim = 4 : i64} : tensor<2x4x8xf32> -> tensor<2x2x4xf32>
    // CHECK: dtl.causal_attention_grad {{.*}}sharding_rule = "([i, j, k], [i, j, k], [i, j, k], [i, k, j], [i, j, k]) -> ([i, j, k], [i, j, k], [i, j, k]) sum={} whole={j} linear={}"
    %attg:3 = dtl.causal_attention_grad %t, %t, %t, %att#1, %t {head_dim = 4 : i64} : tensor<2x4x8xf32>, tensor<2x2x4xf32>
    // CHECK: dtl.dropout {{.*}}sharding_rule = "([i, j, k], [], []) -> ([i, j, k]) sum={} whole={} linear={0}"
    %drop = dtl.dropout %t, %lr layers(%i) {layer_counts = array<i64: 2>, rate = 0.1 : f64, stream = 0 : i64} : tensor<2x4x8xf32>, tensor<f32>
    // CHECK: dtl.cross_entropy {{.*}}sharding_rule = "([i, j, k], [i, j]) -> ([i, j]) sum={} whole={} combined={k} linear={}"
    %ce = dtl.cross_entropy %t, %ids : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
    // CHECK: dtl.cross_entropy_grad {{.*}}sharding_rule = "([i, j, k], [i, j], [i, j]) -> ([i, j, k]) sum={} whole={} combined={k} linear={}"
    %ceg = dtl.cross_entropy_grad %t, %ids, %ce : tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<2x4xf32> -> tensor<2x4x8xf32>
    // CHECK: dtl.correct {{.*}}sharding_rule = "([i, j, k], [i, j]) -> ([i, j]) sum={} whole={} combined={k} linear={}"
    %ok = dtl.correct %t, %ids : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
    // CHECK: dtl.sgd_update {{.*}}sharding_rule = "([i], [i], [i], [], []) -> ([i], [i]) sum={} whole={} linear={}"
    %sgd:2 = dtl.sgd_update %v, %v, %v, %lr, %lr {momentum = 0.9 : f64, weight_decay = 0.0 : f64} : tensor<8xf32>, tensor<f32>
    // CHECK: dtl.adamw_update {{.*}}sharding_rule = "([i], [i], [i], [i], [], [], []) -> ([i], [i], [i]) sum={} whole={} linear={}"
    %adamw:3 = dtl.adamw_update %v, %v, %v, %v, %lr, %lr, %lr {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.1 : f64} : tensor<8xf32>, tensor<f32>
    return
  }
}
