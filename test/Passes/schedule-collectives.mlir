// RUN: dtl-opt %s --dtl-schedule-collectives --split-input-file | FileCheck %s --check-prefixes=CHECK,NOW
// RUN: dtl-opt %s --dtl-schedule-collectives=overlap=true --split-input-file | FileCheck %s --check-prefixes=CHECK,LATE

// Each communicating collective gets a slot and a wait; the wait reads the
// collective's input too, so its buffer lives until then. Without overlap
// (the CPU target) the wait follows at once; with it (CUDA), the wait goes
// just before the first reader, after the independent matmuls. Views of
// the result move after the wait. all_slice is local: no slot, no wait.

// CHECK-LABEL: func.func @g
// CHECK:        %[[A:.*]] = dtl.matmul %arg0, %arg1
// CHECK-NEXT:   %[[S:.*]] = shard.all_reduce %[[A]] on @grid grid_axes = [0] {dtl.slot = 0 : i64}
// NOW-NEXT:     %[[W:.*]] = dtl.collective_wait %[[S]] reads(%[[A]] : tensor<64x64xf32>) : tensor<64x64xf32>
// NOW-NEXT:     %[[R:.*]] = dtl.reshape %[[W]]
// NOW-NEXT:     %[[R2:.*]] = dtl.reshape %[[R]]
// NOW-NEXT:     %[[B:.*]] = dtl.matmul %arg1, %arg0
// NOW-NEXT:     %[[C:.*]] = dtl.matmul %[[B]], %arg1
// LATE-NEXT:    %[[B:.*]] = dtl.matmul %arg1, %arg0
// LATE-NEXT:    %[[C:.*]] = dtl.matmul %[[B]], %arg1
// LATE-NEXT:    %[[W:.*]] = dtl.collective_wait %[[S]] reads(%[[A]] : tensor<64x64xf32>) : tensor<64x64xf32>
// LATE-NEXT:    %[[R:.*]] = dtl.reshape %[[W]]
// LATE-NEXT:    %[[R2:.*]] = dtl.reshape %[[R]]
// CHECK-NEXT:   %[[D:.*]] = dtl.matmul %[[R2]], %[[C]]
// CHECK-NEXT:   %[[G:.*]] = shard.all_gather %[[D]] on @grid grid_axes = [0] gather_axis = 0 {dtl.slot = 1 : i64}
// CHECK-NEXT:   %[[GW:.*]] = dtl.collective_wait %[[G]] reads(%[[D]] : tensor<64x64xf32>) : tensor<128x64xf32>
// CHECK-NEXT:   %[[SL:.*]] = shard.all_slice %[[GW]]
// CHECK-NOT:    dtl.slot
// CHECK-NEXT:   return %[[SL]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @g(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<64x64xf32> {
    %a = dtl.matmul %x, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %s = shard.all_reduce %a on @grid grid_axes = [0] : tensor<64x64xf32> -> tensor<64x64xf32>
    %b = dtl.matmul %w, %x : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %r = dtl.reshape %s : tensor<64x64xf32> -> tensor<4096xf32>
    %c = dtl.matmul %b, %w : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %r2 = dtl.reshape %r : tensor<4096xf32> -> tensor<64x64xf32>
    %d = dtl.matmul %r2, %c : tensor<64x64xf32>, tensor<64x64xf32> -> tensor<64x64xf32>
    %g = shard.all_gather %d on @grid grid_axes = [0] gather_axis = 0 : tensor<64x64xf32> -> tensor<128x64xf32>
    %sl = shard.all_slice %g on @grid grid_axes = [0] slice_axis = 0 : tensor<128x64xf32> -> tensor<64x64xf32>
    return %sl : tensor<64x64xf32>
  }
}

// -----

// Inside a repeat the wait stays in the body (each layer awaits its own
// collective), and slots stay unique across the module; a collective
// whose result only the function returns is awaited before the return.

// CHECK-LABEL: func.func @layers
// CHECK:         dtl.repeat 2
// CHECK:           %[[Y:.*]] = dtl.matmul
// CHECK-NEXT:      %[[S:.*]] = shard.all_reduce %[[Y]] on @grid grid_axes = [0] {dtl.slot = 0 : i64}
// CHECK:           %[[W:.*]] = dtl.collective_wait %[[S]]
// CHECK-NEXT:      dtl.yield %[[W]]
// CHECK:         %[[T:.*]] = shard.all_reduce %{{.*}} {dtl.slot = 1 : i64}
// CHECK-NEXT:    %[[TW:.*]] = dtl.collective_wait %[[T]]
// CHECK-NEXT:    return %[[TW]]
module attributes {dtl.mesh = #dtl.mesh<@grid, ["tp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @layers(%x: tensor<2x8xf32>, %w: tensor<2x8x8xf32>) -> tensor<2x8xf32> {
    %h = dtl.repeat 2 carry(%x : tensor<2x8xf32>) stacked(%w : tensor<2x8x8xf32>) -> (tensor<2x8xf32>) {
    ^bb0(%i: index, %xi: tensor<2x8xf32>, %wi: tensor<8x8xf32>):
      %y = dtl.matmul %xi, %wi : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
      %s = shard.all_reduce %y on @grid grid_axes = [0] : tensor<2x8xf32> -> tensor<2x8xf32>
      dtl.yield %s : tensor<2x8xf32>
    }
    %t = shard.all_reduce %h on @grid grid_axes = [0] : tensor<2x8xf32> -> tensor<2x8xf32>
    return %t : tensor<2x8xf32>
  }
}
