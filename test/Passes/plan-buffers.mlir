// RUN: dtl-opt %s --dtl-plan-buffers --split-input-file | FileCheck %s
// RUN: dtl-opt %s --dtl-plan-buffers=target=cuda --split-input-file | FileCheck %s --check-prefix=CUDA

// Every value gets a place; a dead value's bytes are reused (%2 takes %0's
// once %1 has read it), a view (reshape) has none of its own, and the
// arena is the high-water mark. The module records the target planned for.

// CHECK-LABEL: module attributes {dtl.target = #dtl.target<cpu>}
// CHECK:       func.func @chain{{.*}} attributes {dtl.arena_bytes = 32768 : i64}
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena>]}
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena 16384>]}
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena>]}
// CHECK-NEXT:    dtl.reshape {{.*}} {dtl.place = [#dtl.place<view>]}
// CHECK-NEXT:    dtl.reduce_sum {{.*}} {dtl.place = [#dtl.place<arena 16384>]}
// CUDA-LABEL:  module attributes {dtl.target = #dtl.target<cuda>}
func.func @chain(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<f32> {
  %0 = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %1 = dtl.matmul %0, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %2 = dtl.matmul %1, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
  %3 = dtl.reshape %2 : tensor<64x64xf32> -> tensor<4096xf32>
  %4 = dtl.reduce_sum %3 dims [0] : tensor<4096xf32> -> tensor<f32>
  return %4 : tensor<f32>
}

// -----

// Reals take the bytes of the train section's precision: in f64 the same
// tensors need twice the arena.

// CHECK-LABEL: func.func @f64
// CHECK-SAME:    attributes {dtl.arena_bytes = 65536 : i64}
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena>]}
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena 32768>]}
module attributes {dtl.train = #dtl.train<precision = f64>} {
  func.func @f64(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<f32> {
    %0 = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %1 = dtl.matmul %0, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %2 = dtl.reduce_sum %1 dims [0, 1] : tensor<64x64xf32> -> tensor<f32>
    return %2 : tensor<f32>
  }
}

// -----

// An in-place update writes its results straight into the function's
// results (the param and state buffers): no arena bytes.

// CHECK-LABEL: func.func @adamw
// CHECK-SAME:    attributes {dtl.arena_bytes = 64 : i64}
// CHECK:         dtl.adamw_update {{.*}} dtl.place = [#dtl.place<result>, #dtl.place<result 1>, #dtl.place<result 2>]
func.func @adamw(%p: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %x: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<f32>)
    -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %g = dtl.mul %p, %x : tensor<8xf32>
  %np, %nm, %nv = dtl.adamw_update %p, %g, %m, %v, %lr, %step, %lr {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64, dtl.in_place} : tensor<8xf32>, tensor<f32>
  return %np, %nm, %nv : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
}

// -----

// A repeat's results live in the arena across the loop (the carry at 0,
// the stacked result at 512); its body's values live within one layer,
// after them; a value the body yields as a stacked result is written
// straight into its layer's slice (slice 0: the repeat's stacked result 0).

// CHECK-LABEL: func.func @r
// CHECK-SAME:    attributes {dtl.arena_bytes = 3072 : i64}
// CHECK:         dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena 2560>]}
// CHECK-NEXT:    dtl.tanh {{.*}} {dtl.place = [#dtl.place<slice>]}
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena 2560>]}
// CHECK:       } attributes {dtl.place = [#dtl.place<arena>, #dtl.place<arena 512>]}
func.func @r(%x: tensor<8x16xf32>, %w: tensor<4x16x16xf32>) -> (tensor<8x16xf32>, tensor<4x8x16xf32>) {
  %h, %saved = dtl.repeat 4 carry(%x : tensor<8x16xf32>) stacked(%w : tensor<4x16x16xf32>)
      -> (tensor<8x16xf32>, tensor<4x8x16xf32>) {
  ^bb0(%i: index, %xi: tensor<8x16xf32>, %wi: tensor<16x16xf32>):
    %a = dtl.matmul %xi, %wi : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
    %b = dtl.tanh %a : tensor<8x16xf32>
    %c = dtl.matmul %b, %wi : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
    dtl.yield %c, %b : tensor<8x16xf32>, tensor<8x16xf32>
  }
  return %h, %saved : tensor<8x16xf32>, tensor<4x8x16xf32>
}

// -----

// An awaited collective's input lives until the wait (here after %b):
// %b cannot take %a's bytes.

// CHECK-LABEL: func.func @awaited_late
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena>]}
// CHECK-NEXT:    shard.all_reduce {{.*}} {dtl.place = [#dtl.place<arena 16384>], dtl.slot = 0 : i64}
// CHECK-NEXT:    dtl.matmul {{.*}} {dtl.place = [#dtl.place<arena 32768>]}
// CHECK-NEXT:    dtl.collective_wait {{.*}} {dtl.place = [#dtl.place<view>]}
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @awaited_late(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<64x64xf32> {
    %a = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %s = shard.all_reduce %a on @grid grid_axes = [0] {dtl.slot = 0 : i64} : tensor<64x64xf32> -> tensor<64x64xf32>
    %b = dtl.matmul %w, %x : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %sw = dtl.collective_wait %s reads(%a : tensor<64x64xf32>) : tensor<64x64xf32>
    %d = dtl.matmul %sw, %b : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    return %d : tensor<64x64xf32>
  }
}

// -----

// Cross-entropy's gradient is written over the logits it reads last (one
// [B, C] buffer, as in llm.c), on both targets.

// CHECK-LABEL: func.func @logits{{.*}} attributes {dtl.arena_bytes = 8256 : i64}
// CHECK:         dtl.cross_entropy_grad {{.*}} {dtl.place = [#dtl.place<arena>]}
// CUDA-LABEL:  func.func @logits{{.*}} attributes {dtl.arena_bytes = 8256 : i64}
// CUDA:          dtl.cross_entropy_grad {{.*}} {dtl.place = [#dtl.place<arena>]}
func.func @logits(%x: tensor<64x32xf32>, %w: tensor<32x32xf32>, %labels: tensor<64xi32>, %seed: tensor<64xf32>) -> tensor<f32> {
  %logits = dtl.matmul %x, %w : tensor<64x32xf32>, tensor<32x32xf32> -> tensor<64x32xf32>
  %dl = dtl.cross_entropy_grad %logits, %labels, %seed : tensor<64x32xf32>, tensor<64xi32>, tensor<64xf32> -> tensor<64x32xf32>
  %s = dtl.reduce_sum %dl dims [0, 1] : tensor<64x32xf32> -> tensor<f32>
  return %s : tensor<f32>
}

// -----

// On the CPU a fused loop takes its dying input's buffer; the CUDA fused
// kernels take __restrict__ pointers, so there it gets its own.

// CHECK-LABEL: func.func @loop{{.*}} attributes {dtl.arena_bytes = 8256 : i64}
// CHECK:         } attributes {dtl.place = [#dtl.place<arena>]}
// CUDA-LABEL:  func.func @loop{{.*}} attributes {dtl.arena_bytes = 16384 : i64}
// CUDA:          } attributes {dtl.place = [#dtl.place<arena 8192>]}
func.func @loop(%x: tensor<64x32xf32>, %w: tensor<32x32xf32>) -> tensor<f32> {
  %h = dtl.matmul %x, %w : tensor<64x32xf32>, tensor<32x32xf32> -> tensor<64x32xf32>
  %g = dtl.fused(%h) : (tensor<64x32xf32>) -> tensor<64x32xf32> {
  ^bb0(%e: tensor<f32>):
    %n = dtl.neg %e : tensor<f32>
    dtl.yield %n : tensor<f32>
  }
  %s = dtl.reduce_sum %g dims [0, 1] : tensor<64x32xf32> -> tensor<f32>
  return %s : tensor<f32>
}
