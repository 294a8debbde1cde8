// RUN: dtl-opt %s --split-input-file --verify-diagnostics

// Every verifier of the dtl dialect: op shape rules, region ops, the
// contract's attributes and where they may stand.

//===----------------------------------------------------------------------===//
// Shape rules (the frontend reports the same messages at the .dtl source)
//===----------------------------------------------------------------------===//

func.func @matmul_rank(%a: tensor<4xf32>, %b: tensor<4x4xf32>) {
  // expected-error @+2 {{'@' needs a 2-D (or batched, [..., K]) lhs and a 2-D rhs, got f32[4] @ f32[4, 4]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.matmul %a, %b : tensor<4xf32>, tensor<4x4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @matmul_transposed_batched(%a: tensor<2x4x4xf32>, %b: tensor<4x4xf32>) {
  // expected-error @+2 {{a transposed lhs of '@' must be 2-D, got f32[2, 4, 4]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.matmul %a, %b {transpose_lhs} : tensor<2x4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_contraction(%a: tensor<4x3xf32>, %b: tensor<4x4xf32>) {
  // expected-error @+2 {{shape mismatch in '@': f32[4, 3] @ f32[4, 4] contracts 3 with 4}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.matmul %a, %b : tensor<4x3xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_result(%a: tensor<4x4xf32>, %b: tensor<4x8xf32>) {
  // expected-error @+2 {{'dtl.matmul' op inferred type(s) 'tensor<4x8xf32>' are incompatible with return type(s) of operation 'tensor<4x4xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.matmul %a, %b : tensor<4x4xf32>, tensor<4x8xf32> -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_bias(%a: tensor<4x4xf32>, %b: tensor<4x8xf32>, %c: tensor<4xf32>) {
  // expected-error @+2 {{matmul_bias needs a bias shaped like the result's last dimension, got f32[4] for f32[4, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.matmul_bias %a, %b, %c : tensor<4x4xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @reduce_axis(%a: tensor<4x4xf32>) {
  // expected-error @+2 {{axis 2 is out of range or repeated for f32[4, 4]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.reduce_sum %a dims [2] : tensor<4x4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @reduce_repeated(%a: tensor<4x4xf32>) {
  // expected-error @+2 {{axis 0 is out of range or repeated for f32[4, 4]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.reduce_sum %a dims [0, 0] : tensor<4x4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @layernorm(%x: tensor<4x8xf32>, %w: tensor<4xf32>) {
  // expected-error @+2 {{layernorm(x, weight, bias) needs weight and bias shaped like x's last dimension, got f32[4, 8], f32[4], f32[4]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:3 = dtl.layernorm %x, %w, %w {eps = 1.0e-5 : f64} : tensor<4x8xf32>, tensor<4xf32> -> tensor<4x8xf32>, tensor<4xf32>
  return
}

// -----

func.func @embedding(%t: tensor<16xf32>, %ids: tensor<4xi32>) {
  // expected-error @+2 {{embedding(table, ids) needs an f32 table [V, C] and i32 ids, got f32[16] and i32[4]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.embedding %t, %ids : tensor<16xf32>, tensor<4xi32> -> tensor<4xf32>
  return
}

// -----

func.func @attention_shapes(%q: tensor<4x8xf32>) {
  // expected-error @+2 {{causal_attention needs q, k and v of one shape [B, T, C], got f32[4, 8], f32[4, 8], f32[4, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = dtl.causal_attention %q, %q, %q {head_dim = 4 : i64} : tensor<4x8xf32> -> tensor<2x2x4xf32>
  return
}

// -----

func.func @attention_heads(%q: tensor<2x4x8xf32>) {
  // expected-error @+2 {{causal_attention's heads of 3 channels must divide the 8 channels}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = dtl.causal_attention %q, %q, %q {head_dim = 3 : i64} : tensor<2x4x8xf32> -> tensor<2x2x4xf32>
  return
}

// -----

func.func @transpose(%a: tensor<4x8xf32>) {
  // expected-error @+2 {{the permutation must list each of the 2 dimensions of f32[4, 8] once}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.transpose %a permutation [0, 0] : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @cross_entropy(%logits: tensor<4x8xf32>, %labels: tensor<8xi32>) {
  // expected-error @+2 {{cross_entropy needs f32 logits [..., C] and i32 labels [...], got f32[4, 8] and i32[8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.cross_entropy %logits, %labels : tensor<4x8xf32>, tensor<8xi32> -> tensor<8xf32>
  return
}

// -----

func.func @correct(%logits: tensor<4x8xf32>, %labels: tensor<8xi32>) {
  // expected-error @+2 {{cross_entropy needs f32 logits [..., C] and i32 labels [...], got f32[4, 8] and i32[8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = dtl.correct %logits, %labels : tensor<4x8xf32>, tensor<8xi32> -> tensor<8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Ops whose result types are given
//===----------------------------------------------------------------------===//

func.func @broadcast_count(%a: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.broadcast' op needs one result dimension per operand dimension}}
  %0 = dtl.broadcast %a dims [0, 1] : tensor<4xf32> -> tensor<4x4xf32>
  return
}

// -----

func.func @broadcast_order(%a: tensor<4x4xf32>) {
  // expected-error @+1 {{'dtl.broadcast' op dims must increase and lie within the result rank}}
  %0 = dtl.broadcast %a dims [1, 0] : tensor<4x4xf32> -> tensor<4x4x4xf32>
  return
}

// -----

func.func @broadcast_size(%a: tensor<3xf32>) {
  // expected-error @+1 {{'dtl.broadcast' op operand dimension 0 (3) cannot broadcast to 4}}
  %0 = dtl.broadcast %a dims [1] : tensor<3xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @cross_entropy_grad_count(%logits: tensor<4x8xf32>, %labels: tensor<4xi32>, %g: tensor<3xf32>) {
  // expected-error @+1 {{'dtl.cross_entropy_grad' op needs one gradient per example}}
  %0 = dtl.cross_entropy_grad %logits, %labels, %g : tensor<4x8xf32>, tensor<4xi32>, tensor<3xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @cross_entropy_grad_shape(%logits: tensor<4x8xf32>, %labels: tensor<4xi32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.cross_entropy_grad' op the gradient is shaped like the logits}}
  %0 = dtl.cross_entropy_grad %logits, %labels, %g : tensor<4x8xf32>, tensor<4xi32>, tensor<4xf32> -> tensor<8x4xf32>
  return
}

// -----

func.func @dropout_counts(%x: tensor<4xf32>, %step: tensor<f32>, %i: index) {
  // expected-error @+1 {{'dtl.dropout' op needs one count per layer index}}
  %0 = dtl.dropout %x, %step layers(%i) {layer_counts = array<i64>, rate = 0.1 : f64, stream = 0 : i64} : tensor<4xf32>, tensor<f32>
  return
}

// -----

func.func @dropout_count_positive(%x: tensor<4xf32>, %step: tensor<f32>, %i: index) {
  // expected-error @+1 {{'dtl.dropout' op layer counts must be positive}}
  %0 = dtl.dropout %x, %step layers(%i) {layer_counts = array<i64: 0>, rate = 0.1 : f64, stream = 0 : i64} : tensor<4xf32>, tensor<f32>
  return
}

// -----

func.func @dropout_rate(%x: tensor<4xf32>, %step: tensor<f32>) {
  // expected-error @+1 {{'dtl.dropout' op rate must lie in [0, 1)}}
  %0 = dtl.dropout %x, %step {layer_counts = array<i64>, rate = 1.0 : f64, stream = 0 : i64} : tensor<4xf32>, tensor<f32>
  return
}

// -----

func.func @reshape_count(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{cannot reshape f32[4, 4] to f32[15]: reshapes keep the element count and merge or split neighbouring dimensions}}
  %0 = dtl.reshape %x : tensor<4x4xf32> -> tensor<15xf32>
  return
}

// -----

func.func @reshape_type(%x: tensor<4xi32>) {
  // expected-error @+1 {{cannot reshape i32[4] to f32[4]: a reshape keeps the element type}}
  %0 = dtl.reshape %x : tensor<4xi32> -> tensor<4xf32>
  return
}

// -----

func.func @reshape_groups(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{cannot reshape f32[2, 3] to f32[3, 2]: reshapes keep the element count and merge or split neighbouring dimensions}}
  %0 = dtl.reshape %x : tensor<2x3xf32> -> tensor<3x2xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Region ops
//===----------------------------------------------------------------------===//

func.func @repeat_count(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op needs a positive count}}
  %0 = dtl.repeat 0 carry(%x : tensor<4xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>):
    dtl.yield %xi : tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_virtual_stages(%x: tensor<4xf32>, %w: tensor<6x4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op virtual_stages 4 needs a pipelined repeat whose count they divide}}
  %0 = dtl.repeat 6 pipeline "pp" virtual_stages 4 carry(%x : tensor<4xf32>) stacked(%w : tensor<6x4xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>, %wi: tensor<4xf32>):
    dtl.yield %wi : tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_stage_layers(%x: tensor<4xf32>, %w: tensor<6x4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op stage_layers needs a pipelined repeat without virtual stages, at least one layer per stage, and a count of their sum (or, as stages, their largest)}}
  %0 = dtl.repeat 4 pipeline "pp" stage_layers [3, 2] carry(%x : tensor<4xf32>) stacked(%w : tensor<6x4xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>, %wi: tensor<4xf32>):
    dtl.yield %wi : tensor<4xf32>
  }
  return
}

// -----

func.func @stacked_slice_block(%w: tensor<6x4xf32>) {
  // expected-error @+1 {{'dtl.stacked_slice' op needs a result of the input's type without its leading dimension, or with a leading dimension of its own}}
  %0 = dtl.stacked_slice %w[0] : tensor<6x4xf32> -> tensor<4x5xf32>
  return
}

// -----

func.func @stacked_slice_index(%w: tensor<6x4xf32>) {
  // expected-error @+1 {{'dtl.stacked_slice' op index 3 is outside the 3 whole blocks of the leading dimension}}
  %0 = dtl.stacked_slice %w[3] : tensor<6x4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @repeat_accumulate_type(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op summed result 0 must be a real tensor of the type its body yields}}
  %0 = dtl.repeat 2 accumulate invariant(%x : tensor<4xf32>) -> (tensor<2x4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>):
    dtl.yield %xi : tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_arguments(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op the body takes the layer index, then one argument per carried, stacked and invariant operand}}
  %0 = dtl.repeat 2 carry(%x : tensor<4xf32>) -> (tensor<4xf32>) {
  ^bb0(%xi: tensor<4xf32>):
    dtl.yield %xi : tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_carry_argument(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op a carried value's body argument must have its type}}
  %0 = dtl.repeat 2 carry(%x : tensor<4xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<8xf32>):
    %c = dtl.constant 0.0 : tensor<4xf32>
    dtl.yield %c : tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_stacked(%x: tensor<4xf32>, %w: tensor<3x4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op a stacked operand is [count, ...] and its body argument one slice}}
  %0 = dtl.repeat 2 carry(%x : tensor<4xf32>) stacked(%w : tensor<3x4xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>, %wi: tensor<4xf32>):
    dtl.yield %xi : tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_invariant(%x: tensor<4xf32>, %v: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op an invariant's body argument must have its type}}
  %0 = dtl.repeat 2 carry(%x : tensor<4xf32>) invariant(%v : tensor<4xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>, %vi: tensor<2xf32>):
    dtl.yield %xi : tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_yield_count(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op the body yields each carried value, then one slice per stacked result}}
  %0 = dtl.repeat 2 carry(%x : tensor<4xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>):
    dtl.yield %xi, %xi : tensor<4xf32>, tensor<4xf32>
  }
  return
}

// -----

func.func @repeat_carry_type(%x: tensor<4xf32>, %y: tensor<2xf32>) {
  // expected-error @+1 {{'dtl.repeat' op carried value 0 must keep its type}}
  %0 = dtl.repeat 2 carry(%x : tensor<4xf32>) invariant(%y : tensor<2xf32>) -> (tensor<4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>, %yi: tensor<2xf32>):
    dtl.yield %yi : tensor<2xf32>
  }
  return
}

// -----

func.func @repeat_stacked_result(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.repeat' op stacked result 0 must be [count] + its slice}}
  %0:2 = dtl.repeat 2 carry(%x : tensor<4xf32>) -> (tensor<4xf32>, tensor<3x4xf32>) {
  ^bb0(%i: index, %xi: tensor<4xf32>):
    dtl.yield %xi, %xi : tensor<4xf32>, tensor<4xf32>
  }
  return
}

// -----

func.func @fused_arguments(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.fused' op the body takes one element of each input}}
  %0 = dtl.fused(%x) : (tensor<4xf32>) -> tensor<4xf32> {
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    dtl.yield %a : tensor<f32>
  }
  return
}

// -----

func.func @fused_shapes(%x: tensor<4xf32>, %y: tensor<2xf32>) {
  // expected-error @+1 {{'dtl.fused' op every input must have the result's shape}}
  %0 = dtl.fused(%x, %y) : (tensor<4xf32>, tensor<2xf32>) -> tensor<4xf32> {
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    dtl.yield %a : tensor<f32>
  }
  return
}

// -----

func.func @fused_element(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.fused' op each body argument is one element (a rank-0 tensor) of its input}}
  %0 = dtl.fused(%x) : (tensor<4xf32>) -> tensor<4xf32> {
  ^bb0(%a: tensor<4xf32>):
    %c = dtl.constant 0.0 : tensor<f32>
    dtl.yield %c : tensor<f32>
  }
  return
}

// -----

func.func @fused_yield(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.fused' op the body yields one element of the result}}
  %0 = dtl.fused(%x) : (tensor<4xf32>) -> tensor<4xf32> {
  ^bb0(%a: tensor<f32>):
    dtl.yield %a, %a : tensor<f32>, tensor<f32>
  }
  return
}

// -----

//===----------------------------------------------------------------------===//
// The contract: module attributes
//===----------------------------------------------------------------------===//

// expected-error @+1 {{'dtl.model' belongs on the module}}
func.func @model_on_function() attributes {dtl.model = @m} {
  return
}

// -----

// expected-error @+1 {{'dtl.model' must name the model's function}}
module attributes {dtl.model = "m"} {}

// -----

// expected-error @+1 {{'dtl.mesh' must be a #dtl.mesh}}
module attributes {dtl.mesh = 2} {}

// -----

// expected-error @+1 {{'dtl.mesh' must name a shard.grid of the mesh's shape}}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 4]>} {
  shard.grid @grid(shape = 2)
}

// -----

// expected-error @+1 {{'dtl.optimizer' must be a #dtl.optimizer}}
module attributes {dtl.optimizer = "adamw"} {}

// -----

// expected-error @+1 {{'dtl.train' must be a #dtl.train}}
module attributes {dtl.train = 100} {}

// -----

// expected-error @+1 {{'dtl.target' must be a #dtl.target}}
module attributes {dtl.target = "cuda"} {}

// -----

// expected-error @+1 {{'dtl.unknown' is not an attribute of the dtl dialect}}
module attributes {dtl.unknown = 1} {}

// -----

//===----------------------------------------------------------------------===//
// The contract: op attributes
//===----------------------------------------------------------------------===//

module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @shardings_count(%x: tensor<4xf32>) {
    // expected-error @+1 {{'dtl.shardings' needs one entry per result}}
    %0 = dtl.neg %x {dtl.shardings = []} : tensor<4xf32>
    return
  }
}

// -----

func.func @shardings_entries(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.shardings' entries must be #dtl.sharding}}
  %0 = dtl.neg %x {dtl.shardings = [1]} : tensor<4xf32>
  return
}

// -----

func.func @shardings_rank(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.shardings' the sharding has 2 dimensions, but the tensor has 1}}
  %0 = dtl.neg %x {dtl.shardings = [#dtl.sharding<@grid, [[], []]>]} : tensor<4xf32>
  return
}

// -----

func.func @shardings_axis_twice(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'dtl.shardings' a mesh axis splits two dimensions (or is negative)}}
  %0 = dtl.neg %x {dtl.shardings = [#dtl.sharding<@grid, [[0], [0]]>]} : tensor<4x4xf32>
  return
}

// -----

module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @shardings_grid(%x: tensor<4xf32>) {
    // expected-error @+1 {{'dtl.shardings' the sharding refers to @other, not the mesh's grid @grid}}
    %0 = dtl.neg %x {dtl.shardings = [#dtl.sharding<@other, [[0]]>]} : tensor<4xf32>
    return
  }
}

// -----

module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @shardings_axis(%x: tensor<4xf32>) {
    // expected-error @+1 {{'dtl.shardings' the sharding uses an axis the mesh does not have}}
    %0 = dtl.neg %x {dtl.shardings = [#dtl.sharding<@grid, [[1]]>]} : tensor<4xf32>
    return
  }
}

// -----

module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @shardings_partial(%x: tensor<4xf32>) {
    // expected-error @+1 {{'dtl.shardings' the sharding uses an axis the mesh does not have}}
    %0 = dtl.neg %x {dtl.shardings = [#dtl.sharding<@grid, [[]], partial [3]>]} : tensor<4xf32>
    return
  }
}

// -----

func.func @place_entries(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.place' entries must be #dtl.place}}
  %0 = dtl.neg %x {dtl.place = [0]} : tensor<4xf32>
  return
}

// -----

func.func @place_kind(%x: tensor<4xf32>) {
  // expected-error @+1 {{expected arena, result, slice or view}}
  %0 = dtl.neg %x {dtl.place = [#dtl.place<heap 4>]} : tensor<4xf32>
  return
}

// -----

func.func @arg_shardings(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.arg_shardings' must be a list of #dtl.sharding}}
  %0 = dtl.neg %x {dtl.arg_shardings = 1} : tensor<4xf32>
  return
}

// -----

func.func @arena_bytes(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.arena_bytes' is a function's arena size in bytes}}
  %0 = dtl.neg %x {dtl.arena_bytes = 64 : i64} : tensor<4xf32>
  return
}

// -----

// expected-error @+1 {{'dtl.arena_bytes' is a function's arena size in bytes}}
func.func @arena_negative() attributes {dtl.arena_bytes = -1 : i64} {
  return
}

// -----

func.func @slot(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.slot' numbers a communicating shard collective}}
  %0 = dtl.neg %x {dtl.slot = 0 : i64} : tensor<4xf32>
  return
}

// -----

func.func @in_place(%x: tensor<4xf32>) {
  // expected-error @+1 {{'dtl.in_place' marks an optimizer update}}
  %0 = dtl.neg %x {dtl.in_place} : tensor<4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// The contract: function arguments and results
//===----------------------------------------------------------------------===//

// expected-error @+1 {{'dtl.role' on a function argument must be a #dtl.role}}
func.func @role_type(%x: tensor<4xf32> {dtl.role = "param"}) {
  return
}

// -----

// expected-error @+1 {{'dtl.role' on a function argument cannot be loss}}
func.func @role_argument(%x: tensor<f32> {dtl.role = #dtl.role<loss>}) {
  return
}

// -----

// expected-error @+1 {{'dtl.role' on a function result cannot be input}}
func.func @role_result(%x: tensor<4xf32>) -> (tensor<4xf32> {dtl.role = #dtl.role<input>}) {
  return %x : tensor<4xf32>
}

// -----

// expected-error @+1 {{'dtl.name' on a function argument must be a string}}
func.func @name(%x: tensor<4xf32> {dtl.name = 1}) {
  return
}

// -----

// expected-error @+1 {{'dtl.init' on a function result must be a #dtl.init on an argument}}
func.func @init_result(%x: tensor<4xf32>) -> (tensor<4xf32> {dtl.init = #dtl.init<zeros>}) {
  return %x : tensor<4xf32>
}

// -----

// expected-error @+1 {{'dtl.decay' on a function argument must be a boolean on an argument}}
func.func @decay_not_bool(%x: tensor<4xf32> {dtl.decay = 1 : i32}) {
  return
}

// -----

// expected-error @+1 {{'dtl.decay' on a function result must be a boolean on an argument}}
func.func @decay_result(%x: tensor<4xf32>) -> (tensor<4xf32> {dtl.decay = true}) {
  return %x : tensor<4xf32>
}

// -----

// expected-error @+1 {{'dtl.sharding' on a function argument must be a #dtl.sharding}}
func.func @sharding_type(%x: tensor<4xf32> {dtl.sharding = [0]}) {
  return
}

// -----

// expected-error @+1 {{'dtl.sharding' on a function argument only tensors have a sharding}}
func.func @sharding_index(%i: index {dtl.sharding = #dtl.sharding<@grid, []>}) {
  return
}

// -----

// expected-error @+1 {{'dtl.global_type' on a function argument must be a type}}
func.func @global_type(%x: tensor<4xf32> {dtl.global_type = 4}) {
  return
}

// -----

// expected-error @+1 {{'dtl.weight' on a function argument is not an attribute of the dtl dialect}}
func.func @unknown_argument(%x: tensor<4xf32> {dtl.weight = 1}) {
  return
}

// -----

//===----------------------------------------------------------------------===//
// The contract's attributes themselves
//===----------------------------------------------------------------------===//

// expected-error @+1 {{a mesh needs one size per axis name, and at least one axis}}
module attributes {dtl.mesh = #dtl.mesh<@grid, []>} {}

// -----

// expected-error @+1 {{mesh axis 'dp' must have a positive size}}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 0]>} {}

// -----

// expected-error @+1 {{mesh axis 'dp' is named twice}}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "dp" = 2]>} {}

// -----

// expected-error @+1 {{unknown initializer 'gaussian'}}
func.func @init_unknown(%x: tensor<4xf32> {dtl.init = #dtl.init<gaussian(0.0, 1.0)>}) {
  return
}

// -----

// expected-error @+1 {{normal(mean, std) needs std >= 0}}
func.func @init_std(%x: tensor<4xf32> {dtl.init = #dtl.init<normal(0.0, -1.0)>}) {
  return
}

// -----

// expected-error @+1 {{uniform(low, high) needs low <= high}}
func.func @init_uniform(%x: tensor<4xf32> {dtl.init = #dtl.init<uniform(1.0, 0.0)>}) {
  return
}

// -----

// expected-error @+1 {{optimizer hyper-parameters must be finite and non-negative}}
module attributes {dtl.optimizer = #dtl.optimizer<sgd, lr = -0.1>} {}

// -----

// expected-error @+1 {{betas must lie in [0, 1)}}
module attributes {dtl.optimizer = #dtl.optimizer<adamw, beta1 = 1.0>} {}

// -----

// expected-error @+1 {{momentum must lie in [0, 1)}}
module attributes {dtl.optimizer = #dtl.optimizer<sgd, momentum = 1.5>} {}

// -----

// expected-error @+1 {{adamw needs eps > 0}}
module attributes {dtl.optimizer = #dtl.optimizer<adamw, eps = 0.0>} {}

// -----

// expected-error @+2 {{a data source's inputs and files are strings}}
// expected-error @+1 {{failed to parse Dtl_TrainAttr parameter 'data'}}
module attributes {dtl.train = #dtl.train<data = <idx, inputs = [1], files = ["x.idx"]>>} {}

// -----

// expected-error @+2 {{a data source feeds at least one input}}
// expected-error @+1 {{failed to parse Dtl_TrainAttr parameter 'data'}}
module attributes {dtl.train = #dtl.train<data = <synthetic, inputs = []>>} {}

// -----

// expected-error @+2 {{idx takes one file per input}}
// expected-error @+1 {{failed to parse Dtl_TrainAttr parameter 'data'}}
module attributes {dtl.train = #dtl.train<data = <idx, inputs = ["x", "y"], files = ["x.idx"]>>} {}

// -----

// expected-error @+2 {{tokens takes one file and feeds two inputs (ids, targets)}}
// expected-error @+1 {{failed to parse Dtl_TrainAttr parameter 'data'}}
module attributes {dtl.train = #dtl.train<data = <tokens, inputs = ["idx"], files = ["t.bin"]>>} {}

// -----

// expected-error @+2 {{synthetic takes no files, and positive classes and size}}
// expected-error @+1 {{failed to parse Dtl_TrainAttr parameter 'data'}}
module attributes {dtl.train = #dtl.train<data = <synthetic, inputs = ["x"], classes = 0>>} {}

// -----

// expected-error @+1 {{steps and log_every must be at least 1}}
module attributes {dtl.train = #dtl.train<steps = 0>} {}

// -----

// expected-error @+1 {{reduce_precision = bf16 needs precision = bf16}}
module attributes {dtl.train = #dtl.train<reduce_precision = bf16>} {}

// -----

// expected-error @+1 {{eval_every, eval_batches, seed and warmup must not be negative}}
module attributes {dtl.train = #dtl.train<warmup = -1>} {}

// -----

// expected-error @+1 {{min_lr must be finite and non-negative}}
module attributes {dtl.train = #dtl.train<min_lr = -1.0>} {}

// -----

// expected-error @+1 {{zero is the ZeRO stage: 0, 1, 2 or 3}}
module attributes {dtl.train = #dtl.train<zero = 4>} {}

// -----

func.func @split_gradient_without_lse(%l: tensor<4x8xf32>, %y: tensor<4xi32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{takes `lse` exactly when its classes are split (`class_axes`)}}
  %d = dtl.cross_entropy_grad %l, %y, %g {class_axes = array<i16: 1>} : tensor<4x8xf32>, tensor<4xi32>, tensor<4xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @lse_per_example(%l: tensor<4x8xf32>, %y: tensor<4xi32>, %g: tensor<4xf32>, %lse: tensor<2xf32>) {
  // expected-error @+1 {{needs one log-sum-exp per example}}
  %d = dtl.cross_entropy_grad %l, %y, %g lse %lse {class_axes = array<i16: 1>} : tensor<4x8xf32>, tensor<4xi32>, tensor<4xf32>, tensor<2xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @partial_shape(%l: tensor<4x8xf32>, %y: tensor<4xi32>) {
  // expected-error @+1 {{gives [2, examples...]: two statistics per example}}
  %p = dtl.cross_entropy_partial %l, %y {class_axes = array<i16: 1>} : tensor<4x8xf32>, tensor<4xi32> -> tensor<4xf32>
  return
}

// -----

func.func @combine_parts(%p: tensor<3x4xf32>, %y: tensor<4xi32>) {
  // expected-error @+1 {{needs parts [2 n, examples...] for labels [examples...]}}
  %l, %lse = dtl.cross_entropy_combine %p, %y : tensor<3x4xf32>, tensor<4xi32> -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @split_sizes(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{pieces add up to 7 along dimension 1, not 8}}
  %a, %b = dtl.split %x dim 1 : tensor<4x8xf32> -> tensor<4x3xf32>, tensor<4x4xf32>
  return
}

// -----

func.func @split_other_dim(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{piece f32[2, 4] differs from f32[4, 8] in a dimension other than 1}}
  %a, %b = dtl.split %x dim 1 : tensor<4x8xf32> -> tensor<2x4xf32>, tensor<4x4xf32>
  return
}

// -----

func.func @split_dim(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{dimension 2 is not one of f32[4, 8]}}
  %a = dtl.split %x dim 2 : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @split_interleave(%x: tensor<4x9xf32>) {
  // expected-error @+1 {{piece f32[4, 3] does not divide into 2 interleaved blocks}}
  %a, %b = dtl.split %x dim 1 interleave 2 : tensor<4x9xf32> -> tensor<4x3xf32>, tensor<4x6xf32>
  return
}

// -----

func.func @concat_types(%a: tensor<4x4xf32>, %b: tensor<4x4xbf16>) {
  // expected-error @+1 {{piece bf16[4, 4] has another element type than f32[4, 8]}}
  %c = dtl.concat %a, %b dim 1 : tensor<4x4xf32>, tensor<4x4xbf16> -> tensor<4x8xf32>
  return
}

// -----

func.func @interleave_attribute(%w: tensor<4x8xf32> {dtl.interleave = array<i64: 1, 2, 3, 5>}) {
  // expected-error @-1 {{'dtl.interleave' on a function argument must be [dim, blocks >= 2, piece sizes divisible by blocks...] on a tensor with that dim}}
  return
}
