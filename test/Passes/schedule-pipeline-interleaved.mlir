// RUN: dtl-opt %s --dtl-schedule-pipeline | FileCheck %s
// RUN: dtl-opt %s --dtl-schedule-pipeline --dtl-check-schedule -o /dev/null

// The interleaved schedule (Megatron's), on a partitioned train step
// (dtlc --mlir-print-ir-before=dtl-schedule-pipeline on a four-layer
// residual MLP, `repeat 4 res(x) pipeline pp` over [pp: 2] with
// `pipeline = interleaved(2)`, two micro-batches). The repeat has two
// virtual stages: each rank's block of h.a (2x4x4 of 4x4x4, stored
// interleaved) is its two chunks of one layer, stage 0 holding the model's
// chunks 0 and 2, stage 1 chunks 1 and 3. Each chunk runs as its own repeat
// on a view of its layers; a micro-batch leaves stage 1's first chunk for
// stage 0's second, so stage 1 sends forward to stage 0 and stage 0 sends
// gradients back to stage 1. The chunks' gradients of h.a are concatenated
// into the stage's block once its last chunk backwards has run.

// CHECK:      scf.index_switch
// CHECK:      case 0 {
// CHECK:        %[[X0:.*]] = dtl.stacked_slice %{{.*}}[0] : tensor<2x4x4xf32> -> tensor<4x4xf32>
// CHECK:        %[[A0:.*]] = dtl.stacked_slice %arg1[0] : tensor<2x4x4xf32> -> tensor<1x4x4xf32>
// CHECK:        %[[F00:.*]]:3 = dtl.repeat 1 pipeline "pp" carry(%[[X0]] : tensor<4x4xf32>) stacked(%[[A0]] : tensor<1x4x4xf32>)
// CHECK:        } attributes {dtl.first_layer = 0 : i64, dtl.micro_batch = 0 : i64, dtl.virtual_stage = 0 : i64}
// CHECK-NEXT:   shard.send %[[F00]]#0 on @grid grid_axes = [0] destination = [1]
// CHECK:        } attributes {dtl.first_layer = 0 : i64, dtl.micro_batch = 1 : i64, dtl.virtual_stage = 0 : i64}
// Micro-batch 0 back from stage 1's first chunk, into stage 0's second.
// CHECK:        %[[IN:.*]] = shard.recv %{{.*}} source = [1]
// CHECK:        shard.send
// CHECK:        %[[A1:.*]] = dtl.stacked_slice %arg1[1] : tensor<2x4x4xf32> -> tensor<1x4x4xf32>
// CHECK:        dtl.repeat 1 pipeline "pp" carry(%[[IN]] : tensor<4x4xf32>) stacked(%[[A1]] : tensor<1x4x4xf32>)
// CHECK:        } attributes {dtl.first_layer = 2 : i64, dtl.micro_batch = 0 : i64, dtl.virtual_stage = 1 : i64}
// The backwards, chunk 1 then chunk 0, and the stage's gradient of h.a.
// CHECK:        %[[B1:.*]]:2 = dtl.repeat 1 reverse pipeline "pp"
// CHECK:        } attributes {dtl.first_layer = 2 : i64, dtl.micro_batch = 0 : i64, dtl.virtual_stage = 1 : i64}
// CHECK:        } attributes {dtl.first_layer = 2 : i64, dtl.micro_batch = 1 : i64, dtl.virtual_stage = 1 : i64}
// CHECK:        } attributes {dtl.first_layer = 0 : i64, dtl.micro_batch = 0 : i64, dtl.virtual_stage = 0 : i64}
// CHECK-NEXT:   dtl.concat %{{.*}}#1, %[[B1]]#1 dim 0 : tensor<1x4x4xf32>, tensor<1x4x4xf32> -> tensor<2x4x4xf32>
// CHECK:      default {
// CHECK:        shard.recv %{{.*}} source = [0]
// CHECK:        } attributes {dtl.first_layer = 1 : i64, dtl.micro_batch = 0 : i64, dtl.virtual_stage = 0 : i64}
// CHECK-NEXT:   shard.send %{{.*}} destination = [0]
// CHECK:        } attributes {dtl.first_layer = 3 : i64, dtl.micro_batch = 0 : i64, dtl.virtual_stage = 1 : i64}
// The head and the loss follow stage 1's last chunk.
// CHECK-NEXT:   dtl.matmul
// CHECK:      shard.all_reduce

module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>, dtl.model = @m, dtl.optimizer = #dtl.optimizer<sgd, lr = 0.1, momentum = 0.9>, dtl.train = #dtl.train<data = <synthetic, inputs = ["x", "y"], classes = 3, size = 64>, steps = 2, accumulate = 2, pipeline = interleaved>} {
  shard.grid @grid(shape = 2)
  func.func @train_step(%arg0: tensor<4x3xf32> {dtl.decay = true, dtl.global_type = tensor<4x3xf32>, dtl.init = #dtl.init<normal(0.0, 0.5)>, dtl.name = "w_out", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, %arg1: tensor<2x4x4xf32> {dtl.decay = true, dtl.global_type = tensor<4x4x4xf32>, dtl.init = #dtl.init<normal(0.0, 0.5)>, dtl.interleave = array<i64: 0, 2, 2, 2>, dtl.name = "h.a", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}, %arg2: tensor<4x3xf32> {dtl.global_type = tensor<4x3xf32>, dtl.name = "w_out.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, %arg3: tensor<2x4x4xf32> {dtl.global_type = tensor<4x4x4xf32>, dtl.interleave = array<i64: 0, 2, 2, 2>, dtl.name = "h.a.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}, %arg4: tensor<8x4xf32> {dtl.global_type = tensor<8x4xf32>, dtl.name = "x", dtl.role = #dtl.role<input>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, %arg5: tensor<8xi32> {dtl.bound = 3 : i64, dtl.global_type = tensor<8xi32>, dtl.ignorable, dtl.name = "y", dtl.role = #dtl.role<input>, dtl.sharding = #dtl.sharding<@grid, [[]]>}, %arg6: tensor<f32> {dtl.global_type = tensor<f32>, dtl.role = #dtl.role<lr>}, %arg7: tensor<f32> {dtl.global_type = tensor<f32>, dtl.role = #dtl.role<step>}) -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<f32> {dtl.role = #dtl.role<grad_norm>}, tensor<4x3xf32> {dtl.name = "w_out", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, tensor<2x4x4xf32> {dtl.interleave = array<i64: 0, 2, 2, 2>, dtl.name = "h.a", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}, tensor<4x3xf32> {dtl.name = "w_out.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, tensor<2x4x4xf32> {dtl.interleave = array<i64: 0, 2, 2, 2>, dtl.name = "h.a.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}) {
    %0 = dtl.reshape %arg4 : tensor<8x4xf32> -> tensor<4x2x4xf32>
    %1 = dtl.transpose %0 permutation [1, 0, 2] : tensor<4x2x4xf32> -> tensor<2x4x4xf32>
    %2 = dtl.reshape %arg5 : tensor<8xi32> -> tensor<4x2xi32>
    %3 = dtl.transpose %2 permutation [1, 0] : tensor<4x2xi32> -> tensor<2x4xi32>
    %4:3 = dtl.repeat 2 accumulate stacked(%1, %3 : tensor<2x4x4xf32>, tensor<2x4xi32>) invariant(%arg0, %arg1 : tensor<4x3xf32>, tensor<2x4x4xf32>) -> (tensor<f32>, tensor<4x3xf32>, tensor<2x4x4xf32>) {
    ^bb0(%arg8: index, %arg9: tensor<4x4xf32>, %arg10: tensor<4xi32>, %arg11: tensor<4x3xf32>, %arg12: tensor<2x4x4xf32>):
      %18:3 = dtl.repeat 2 pipeline "pp" virtual_stages 2 carry(%arg9 : tensor<4x4xf32>) stacked(%arg12 : tensor<2x4x4xf32>) -> (tensor<4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) {
      ^bb0(%arg13: index, %arg14: tensor<4x4xf32>, %arg15: tensor<4x4xf32>):
        %34 = dtl.matmul %arg14, %arg15 : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
        %35 = dtl.relu %34 : tensor<4x4xf32>
        %36 = dtl.add %arg14, %35 : tensor<4x4xf32>
        dtl.yield %36, %34, %arg14 : tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>
      }
      %19 = dtl.matmul %18#0, %arg11 : tensor<4x4xf32>, tensor<4x3xf32> -> tensor<4x3xf32>
      %20 = dtl.cross_entropy %19, %arg10 : tensor<4x3xf32>, tensor<4xi32> -> tensor<4xf32>
      %21 = dtl.reduce_sum %20 dims [0] : tensor<4xf32> -> tensor<f32>
      %22 = dtl.label_kept %arg10 : tensor<4xi32> -> tensor<4xf32>
      %23 = dtl.reduce_sum %22 dims [0] : tensor<4xf32> -> tensor<f32>
      %24 = dtl.constant 1.000000e-30 : tensor<f32>
      %25 = dtl.add %23, %24 : tensor<f32>
      %26 = dtl.div %21, %25 : tensor<f32>
      %27 = dtl.constant 1.000000e+00 : tensor<f32>
      %28 = dtl.div %27, %25 : tensor<f32>
      %29 = dtl.broadcast %28 dims [] : tensor<f32> -> tensor<4xf32>
      %30 = dtl.cross_entropy_grad %19, %arg10, %29 : tensor<4x3xf32>, tensor<4xi32>, tensor<4xf32> -> tensor<4x3xf32>
      %31 = dtl.matmul %30, %arg11 {transpose_rhs} : tensor<4x3xf32>, tensor<4x3xf32> -> tensor<4x4xf32>
      %32 = dtl.matmul %18#0, %30 {transpose_lhs} : tensor<4x4xf32>, tensor<4x3xf32> -> tensor<4x3xf32>
      %33:2 = dtl.repeat 2 reverse pipeline "pp" virtual_stages 2 carry(%31 : tensor<4x4xf32>) stacked(%18#1, %arg12, %18#2 : tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> (tensor<4x4xf32>, tensor<2x4x4xf32>) {
      ^bb0(%arg13: index, %arg14: tensor<4x4xf32>, %arg15: tensor<4x4xf32>, %arg16: tensor<4x4xf32>, %arg17: tensor<4x4xf32>):
        %34 = dtl.relu_grad %arg15, %arg14 : tensor<4x4xf32>
        %35 = dtl.matmul %34, %arg16 {transpose_rhs} : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
        %36 = dtl.matmul %arg17, %34 {transpose_lhs} : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
        %37 = dtl.add %arg14, %35 : tensor<4x4xf32>
        dtl.yield %37, %36 : tensor<4x4xf32>, tensor<4x4xf32>
      }
      dtl.yield %26, %32, %33#1 : tensor<f32>, tensor<4x3xf32>, tensor<2x4x4xf32>
    }
    %5 = dtl.constant 5.000000e-01 : tensor<f32>
    %6 = dtl.mul %4#0, %5 : tensor<f32>
    %7 = dtl.constant 5.000000e-01 : tensor<4x3xf32>
    %8 = dtl.mul %4#1, %7 : tensor<4x3xf32>
    %9 = dtl.constant 5.000000e-01 : tensor<2x4x4xf32>
    %10 = dtl.mul %4#2, %9 : tensor<2x4x4xf32>
    %11 = dtl.mul %10, %10 : tensor<2x4x4xf32>
    %12 = dtl.reduce_sum %11 dims [0, 1, 2] : tensor<2x4x4xf32> -> tensor<f32>
    %all_reduce = shard.all_reduce %12 on @grid grid_axes = [0] : tensor<f32> -> tensor<f32>
    %13 = dtl.mul %8, %8 : tensor<4x3xf32>
    %14 = dtl.reduce_sum %13 dims [0, 1] : tensor<4x3xf32> -> tensor<f32>
    %15 = dtl.add %all_reduce, %14 : tensor<f32>
    %16 = dtl.sqrt %15 : tensor<f32>
    %17 = dtl.grad_scale %6, %16 {max_norm = 0.000000e+00 : f64} : tensor<f32>
    %new_param, %new_momentum_buf = dtl.sgd_update %arg0, %8, %arg2, %arg6, %17 {momentum = 9.000000e-01 : f64, weight_decay = 0.000000e+00 : f64} : tensor<4x3xf32>, tensor<f32>
    %new_param_0, %new_momentum_buf_1 = dtl.sgd_update %arg1, %10, %arg3, %arg6, %17 {momentum = 9.000000e-01 : f64, weight_decay = 0.000000e+00 : f64} : tensor<2x4x4xf32>, tensor<f32>
    return %6, %16, %new_param, %new_param_0, %new_momentum_buf, %new_momentum_buf_1 : tensor<f32>, tensor<f32>, tensor<4x3xf32>, tensor<2x4x4xf32>, tensor<4x3xf32>, tensor<2x4x4xf32>
  }
}


