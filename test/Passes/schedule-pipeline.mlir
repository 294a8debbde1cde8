// RUN: dtl-opt %s --dtl-schedule-pipeline | FileCheck %s --check-prefix=ONEF
// RUN: sed -e 's/steps = 2,/steps = 2, pipeline = gpipe,/' %s | dtl-opt --dtl-schedule-pipeline \
// RUN:   | FileCheck %s --check-prefix=GPIPE
// RUN: dtl-opt %s --dtl-schedule-pipeline --dtl-check-schedule -o /dev/null

// A partitioned train step (dtlc --mlir-print-ir-before=dtl-schedule-pipeline
// on a two-layer residual MLP, `repeat 2 res(x) pipeline pp` over [pp: 2],
// two micro-batches): each rank holds one layer (h.a is 1x4x4 of 2x4x4), and
// the micro-batch loop still runs the whole forward and backward. The pass
// makes it one switch on the stage: stage 0 takes each micro-batch's input
// (a view), runs its layer and sends the activation; stage 1 (default)
// receives it, runs its layer, the head, the loss and its gradient, and
// sends the gradient back. The loss and w_out's gradient, which only stage 1
// computes, are zero on stage 0 and all-reduced over pp after the switch;
// h.a's gradient is each stage's own block.

// 1F1B: stage 1 runs a backward right after each forward; stage 0 computes
// micro-batch 1's forward before it sends it, receiving the first gradient
// first, so neither stage waits for the other forever.
// ONEF:       %[[STAGE:.*]] = shard.process_multi_index on @grid axes = [0] : index
// ONEF:       %[[SW:.*]]:3 = scf.index_switch %[[STAGE]] -> tensor<f32>, tensor<4x3xf32>, tensor<1x4x4xf32>
// Stage 0 takes each micro-batch's inputs where it first reads them, and
// never the labels.
// ONEF:       case 0 {
// ONEF-NOT:     tensor<2x2xi32>
// ONEF:         %[[X0:.*]] = dtl.stacked_slice %{{.*}}[0] : tensor<2x2x4xf32> -> tensor<2x4xf32>
// ONEF-NEXT:    %[[F0:.*]]:3 = dtl.repeat 1 pipeline "pp" carry(%[[X0]] : tensor<2x4xf32>)
// ONEF:         } attributes {dtl.first_layer = 0 : i64, dtl.micro_batch = 0 : i64}
// ONEF-NEXT:    shard.send %[[F0]]#0 on @grid grid_axes = [0] destination = [1]
// ONEF-NEXT:    %[[X1:.*]] = dtl.stacked_slice %{{.*}}[1] : tensor<2x2x4xf32> -> tensor<2x4xf32>
// ONEF-NEXT:    %[[F1:.*]]:3 = dtl.repeat 1 pipeline "pp" carry(%[[X1]] : tensor<2x4xf32>)
// ONEF:         } attributes {dtl.first_layer = 0 : i64, dtl.micro_batch = 1 : i64}
// ONEF-NEXT:    %[[G0:.*]] = shard.recv %{{.*}} on @grid grid_axes = [0] source = [1]
// ONEF-NEXT:    shard.send %[[F1]]#0 on @grid grid_axes = [0] destination = [1]
// ONEF-NEXT:    dtl.repeat 1 reverse pipeline "pp" carry(%[[G0]] : tensor<2x4xf32>)
// ONEF:         %[[ZERO_LOSS:.*]] = dtl.constant 0.000000e+00 : tensor<f32>
// ONEF:         %[[ZERO_W:.*]] = dtl.constant 0.000000e+00 : tensor<4x3xf32>
// ONEF:         scf.yield %[[ZERO_LOSS]], %[[ZERO_W]], %{{.*}} : tensor<f32>, tensor<4x3xf32>, tensor<1x4x4xf32>
// ONEF:       default {
// ONEF:         %[[A0:.*]] = shard.recv %{{.*}} on @grid grid_axes = [0] source = [0]
// ONEF-NEXT:    dtl.repeat 1 pipeline "pp" carry(%[[A0]] : tensor<2x4xf32>)
// ONEF:         dtl.cross_entropy_grad
// ONEF:         dtl.repeat 1 reverse pipeline "pp"
// ONEF:         } attributes {dtl.first_layer = 1 : i64, dtl.micro_batch = 0 : i64}
// ONEF-NEXT:    shard.send %{{.*}}#0 on @grid grid_axes = [0] destination = [0]
// ONEF-NEXT:    shard.recv %{{.*}} on @grid grid_axes = [0] source = [0]
// ONEF:         dtl.repeat 1 reverse pipeline "pp"
// ONEF:         } attributes {dtl.first_layer = 1 : i64, dtl.micro_batch = 1 : i64}
// ONEF:         shard.send %{{.*}}#0 on @grid grid_axes = [0] destination = [0]
// ONEF-NEXT:    scf.yield
// ONEF:       %[[LOSS:.*]] = shard.all_reduce %[[SW]]#0 on @grid grid_axes = [0] : tensor<f32>
// ONEF-NEXT:  %[[W:.*]] = shard.all_reduce %[[SW]]#1 on @grid grid_axes = [0] : tensor<4x3xf32>
// ONEF-NOT:   shard.all_reduce %[[SW]]#2
// ONEF:       dtl.mul %[[SW]]#2,

// GPipe: every forward, then every backward, on both stages.
// GPIPE:      case 0 {
// GPIPE:        shard.send
// GPIPE:        } attributes {dtl.first_layer = 0 : i64, dtl.micro_batch = 1 : i64}
// GPIPE-NEXT:   shard.send
// GPIPE-NEXT:   shard.recv
// GPIPE:      default {
// GPIPE:        } attributes {dtl.first_layer = 1 : i64, dtl.micro_batch = 0 : i64}
// GPIPE:        shard.recv
// GPIPE:        dtl.repeat 1 pipeline "pp"
// GPIPE:        dtl.repeat 1 reverse pipeline "pp"
// GPIPE:        } attributes {dtl.first_layer = 1 : i64, dtl.micro_batch = 0 : i64}
// GPIPE-NEXT:   shard.send
// GPIPE:        dtl.repeat 1 reverse pipeline "pp"
// GPIPE:        } attributes {dtl.first_layer = 1 : i64, dtl.micro_batch = 1 : i64}
// GPIPE:        shard.send
// GPIPE-NEXT:   scf.yield

module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>, dtl.model = @small, dtl.optimizer = #dtl.optimizer<sgd>, dtl.train = #dtl.train<data = <synthetic, inputs = ["x", "y"], classes = 3, size = 64>, steps = 2, accumulate = 2>} {
  shard.grid @grid(shape = 2)
  func.func @train_step(%arg0: tensor<4x3xf32> {dtl.decay = true, dtl.global_type = tensor<4x3xf32>, dtl.init = #dtl.init<normal(0.0, 0.5)>, dtl.name = "w_out", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, %arg1: tensor<1x4x4xf32> {dtl.decay = true, dtl.global_type = tensor<2x4x4xf32>, dtl.init = #dtl.init<normal(0.0, 0.5)>, dtl.name = "h.a", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}, %arg2: tensor<4x3xf32> {dtl.global_type = tensor<4x3xf32>, dtl.name = "w_out.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, %arg3: tensor<1x4x4xf32> {dtl.global_type = tensor<2x4x4xf32>, dtl.name = "h.a.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}, %arg4: tensor<4x4xf32> {dtl.global_type = tensor<4x4xf32>, dtl.name = "x", dtl.role = #dtl.role<input>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, %arg5: tensor<4xi32> {dtl.bound = 3 : i64, dtl.global_type = tensor<4xi32>, dtl.ignorable, dtl.name = "y", dtl.role = #dtl.role<input>, dtl.sharding = #dtl.sharding<@grid, [[]]>}, %arg6: tensor<f32> {dtl.global_type = tensor<f32>, dtl.role = #dtl.role<lr>}, %arg7: tensor<f32> {dtl.global_type = tensor<f32>, dtl.role = #dtl.role<step>}) -> (tensor<f32> {dtl.role = #dtl.role<loss>}, tensor<f32> {dtl.role = #dtl.role<grad_norm>}, tensor<4x3xf32> {dtl.name = "w_out", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, tensor<1x4x4xf32> {dtl.name = "h.a", dtl.role = #dtl.role<param>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}, tensor<4x3xf32> {dtl.name = "w_out.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[], []]>}, tensor<1x4x4xf32> {dtl.name = "h.a.momentum", dtl.role = #dtl.role<opt_state>, dtl.sharding = #dtl.sharding<@grid, [[0], [], []]>}) {
    %0 = dtl.reshape %arg4 : tensor<4x4xf32> -> tensor<2x2x4xf32>
    %1 = dtl.transpose %0 permutation [1, 0, 2] : tensor<2x2x4xf32> -> tensor<2x2x4xf32>
    %2 = dtl.reshape %arg5 : tensor<4xi32> -> tensor<2x2xi32>
    %3 = dtl.transpose %2 permutation [1, 0] : tensor<2x2xi32> -> tensor<2x2xi32>
    %4:3 = dtl.repeat 2 accumulate stacked(%1, %3 : tensor<2x2x4xf32>, tensor<2x2xi32>) invariant(%arg0, %arg1 : tensor<4x3xf32>, tensor<1x4x4xf32>) -> (tensor<f32>, tensor<4x3xf32>, tensor<1x4x4xf32>) {
    ^bb0(%arg8: index, %arg9: tensor<2x4xf32>, %arg10: tensor<2xi32>, %arg11: tensor<4x3xf32>, %arg12: tensor<1x4x4xf32>):
      %18:3 = dtl.repeat 1 pipeline "pp" carry(%arg9 : tensor<2x4xf32>) stacked(%arg12 : tensor<1x4x4xf32>) -> (tensor<2x4xf32>, tensor<1x2x4xf32>, tensor<1x2x4xf32>) {
      ^bb0(%arg13: index, %arg14: tensor<2x4xf32>, %arg15: tensor<4x4xf32>):
        %34 = dtl.matmul %arg14, %arg15 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
        %35 = dtl.relu %34 : tensor<2x4xf32>
        %36 = dtl.add %arg14, %35 : tensor<2x4xf32>
        dtl.yield %36, %34, %arg14 : tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>
      }
      %19 = dtl.matmul %18#0, %arg11 : tensor<2x4xf32>, tensor<4x3xf32> -> tensor<2x3xf32>
      %20 = dtl.cross_entropy %19, %arg10 : tensor<2x3xf32>, tensor<2xi32> -> tensor<2xf32>
      %21 = dtl.reduce_sum %20 dims [0] : tensor<2xf32> -> tensor<f32>
      %22 = dtl.label_kept %arg10 : tensor<2xi32> -> tensor<2xf32>
      %23 = dtl.reduce_sum %22 dims [0] : tensor<2xf32> -> tensor<f32>
      %24 = dtl.constant 1.000000e-30 : tensor<f32>
      %25 = dtl.add %23, %24 : tensor<f32>
      %26 = dtl.div %21, %25 : tensor<f32>
      %27 = dtl.constant 1.000000e+00 : tensor<f32>
      %28 = dtl.div %27, %25 : tensor<f32>
      %29 = dtl.broadcast %28 dims [] : tensor<f32> -> tensor<2xf32>
      %30 = dtl.cross_entropy_grad %19, %arg10, %29 : tensor<2x3xf32>, tensor<2xi32>, tensor<2xf32> -> tensor<2x3xf32>
      %31 = dtl.matmul %30, %arg11 {transpose_rhs} : tensor<2x3xf32>, tensor<4x3xf32> -> tensor<2x4xf32>
      %32 = dtl.matmul %18#0, %30 {transpose_lhs} : tensor<2x4xf32>, tensor<2x3xf32> -> tensor<4x3xf32>
      %33:2 = dtl.repeat 1 reverse pipeline "pp" carry(%31 : tensor<2x4xf32>) stacked(%18#1, %arg12, %18#2 : tensor<1x2x4xf32>, tensor<1x4x4xf32>, tensor<1x2x4xf32>) -> (tensor<2x4xf32>, tensor<1x4x4xf32>) {
      ^bb0(%arg13: index, %arg14: tensor<2x4xf32>, %arg15: tensor<2x4xf32>, %arg16: tensor<4x4xf32>, %arg17: tensor<2x4xf32>):
        %34 = dtl.relu_grad %arg15, %arg14 : tensor<2x4xf32>
        %35 = dtl.matmul %34, %arg16 {transpose_rhs} : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
        %36 = dtl.matmul %arg17, %34 {transpose_lhs} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<4x4xf32>
        %37 = dtl.add %arg14, %35 : tensor<2x4xf32>
        dtl.yield %37, %36 : tensor<2x4xf32>, tensor<4x4xf32>
      }
      dtl.yield %26, %32, %33#1 : tensor<f32>, tensor<4x3xf32>, tensor<1x4x4xf32>
    }
    %5 = dtl.constant 5.000000e-01 : tensor<f32>
    %6 = dtl.mul %4#0, %5 : tensor<f32>
    %7 = dtl.constant 5.000000e-01 : tensor<4x3xf32>
    %8 = dtl.mul %4#1, %7 : tensor<4x3xf32>
    %9 = dtl.constant 5.000000e-01 : tensor<2x4x4xf32>
    %all_slice = shard.all_slice %9 on @grid grid_axes = [0] slice_axis = 0 : tensor<2x4x4xf32> -> tensor<1x4x4xf32>
    %10 = dtl.mul %4#2, %all_slice : tensor<1x4x4xf32>
    %11 = dtl.mul %10, %10 : tensor<1x4x4xf32>
    %12 = dtl.reduce_sum %11 dims [0, 1, 2] : tensor<1x4x4xf32> -> tensor<f32>
    %all_reduce = shard.all_reduce %12 on @grid grid_axes = [0] : tensor<f32> -> tensor<f32>
    %13 = dtl.mul %8, %8 : tensor<4x3xf32>
    %14 = dtl.reduce_sum %13 dims [0, 1] : tensor<4x3xf32> -> tensor<f32>
    %15 = dtl.add %all_reduce, %14 : tensor<f32>
    %16 = dtl.sqrt %15 : tensor<f32>
    %17 = dtl.grad_scale %6, %16 {max_norm = 0.000000e+00 : f64} : tensor<f32>
    %new_param, %new_momentum_buf = dtl.sgd_update %arg0, %8, %arg2, %arg6, %17 {momentum = 0.000000e+00 : f64, weight_decay = 0.000000e+00 : f64} : tensor<4x3xf32>, tensor<f32>
    %new_param_0, %new_momentum_buf_1 = dtl.sgd_update %arg1, %10, %arg3, %arg6, %17 {momentum = 0.000000e+00 : f64, weight_decay = 0.000000e+00 : f64} : tensor<1x4x4xf32>, tensor<f32>
    return %6, %16, %new_param, %new_param_0, %new_momentum_buf, %new_momentum_buf_1 : tensor<f32>, tensor<f32>, tensor<4x3xf32>, tensor<1x4x4xf32>, tensor<4x3xf32>, tensor<1x4x4xf32>
  }
}


