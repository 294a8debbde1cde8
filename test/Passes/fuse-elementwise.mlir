// RUN: dtl-opt %s --dtl-fuse-elementwise --split-input-file | FileCheck %s

// A chain of elementwise ops, each read once by the next, is one loop: the
// constant and every op move into the body, on one element each.

// CHECK-LABEL: func.func @chain
// CHECK-NEXT:  %[[F:.*]] = dtl.fused(%arg0, %arg1) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32> {
// CHECK-NEXT:  ^bb0(%[[X:.*]]: tensor<f32>, %[[Y:.*]]: tensor<f32>):
// CHECK-NEXT:    %[[C:.*]] = dtl.constant 2.000000e+00 : tensor<f32>
// CHECK-NEXT:    %[[A:.*]] = dtl.mul %[[X]], %[[C]] : tensor<f32>
// CHECK-NEXT:    %[[B:.*]] = dtl.add %[[A]], %[[Y]] : tensor<f32>
// CHECK-NEXT:    %[[T:.*]] = dtl.tanh %[[B]] : tensor<f32>
// CHECK-NEXT:    dtl.yield %[[T]] : tensor<f32>
// CHECK-NEXT:  }
// CHECK-NEXT:  return %[[F]]
func.func @chain(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %c = dtl.constant 2.0 : tensor<4x8xf32>
  %a = dtl.mul %x, %c : tensor<4x8xf32>
  %b = dtl.add %a, %y : tensor<4x8xf32>
  %t = dtl.tanh %b : tensor<4x8xf32>
  return %t : tensor<4x8xf32>
}

// -----

// A value read twice is computed once, in its own loop; so is one read by
// an op that is not elementwise. Each elementwise op still ends up in a
// dtl.fused, so the printers have one way to print them.

// CHECK-LABEL: func.func @shared
// CHECK-NEXT:  %[[E:.*]] = dtl.fused(%arg0)
// CHECK-NEXT:  ^bb0
// CHECK-NEXT:    dtl.exp
// CHECK-NEXT:    dtl.yield
// CHECK:       %[[N:.*]] = dtl.fused(%[[E]])
// CHECK:         dtl.neg
// CHECK:       %[[M:.*]] = dtl.fused(%[[E]])
// CHECK:         dtl.mul %[[A:.*]], %[[A]] : tensor<f32>
// CHECK:       %[[R:.*]] = dtl.fused(%arg0)
// CHECK:         dtl.relu
// CHECK:       dtl.reduce_sum %[[R]]
func.func @shared(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<8xf32>) {
  %e = dtl.exp %x : tensor<4x8xf32>
  %n = dtl.neg %e : tensor<4x8xf32>
  %m = dtl.mul %e, %e : tensor<4x8xf32>
  %r = dtl.relu %x : tensor<4x8xf32>
  %s = dtl.reduce_sum %r dims [0] : tensor<4x8xf32> -> tensor<8xf32>
  return %n, %m, %s : tensor<4x8xf32>, tensor<4x8xf32>, tensor<8xf32>
}

// -----

// An optimizer update may write over its param in place: an op before it
// that reads the param is not moved past it into a later loop.

// CHECK-LABEL: func.func @update_between
// CHECK:       %[[SQ:.*]] = dtl.fused(%arg0)
// CHECK:         dtl.mul
// CHECK:       dtl.sgd_update
// CHECK:       dtl.fused(%[[SQ]])
// CHECK:         dtl.sqrt
func.func @update_between(%p: tensor<8xf32>, %g: tensor<8xf32>, %buf: tensor<8xf32>, %lr: tensor<f32>)
    -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %sq = dtl.mul %p, %p : tensor<8xf32>
  %new, %newbuf = dtl.sgd_update %p, %g, %buf, %lr, %lr {momentum = 0.9 : f64, weight_decay = 0.0 : f64} : tensor<8xf32>, tensor<f32>
  %norm = dtl.sqrt %sq : tensor<8xf32>
  return %norm, %new, %newbuf : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
}

// -----

// A repeat's body fuses like a function body, within one layer.

// CHECK-LABEL: func.func @layers
// CHECK:       dtl.repeat 3
// CHECK:         dtl.matmul
// CHECK-NEXT:    %[[F:.*]] = dtl.fused
// CHECK-NEXT:    ^bb0
// CHECK-NEXT:      dtl.add
// CHECK-NEXT:      dtl.tanh
// CHECK-NEXT:      dtl.yield
// CHECK:         dtl.yield %[[F]]
func.func @layers(%x: tensor<2x8xf32>, %w: tensor<3x8x8xf32>, %b: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %h = dtl.repeat 3 carry(%x : tensor<2x8xf32>) stacked(%w : tensor<3x8x8xf32>) invariant(%b : tensor<2x8xf32>) -> (tensor<2x8xf32>) {
  ^bb0(%i: index, %xi: tensor<2x8xf32>, %wi: tensor<8x8xf32>, %bi: tensor<2x8xf32>):
    %y = dtl.matmul %xi, %wi : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
    %z = dtl.add %y, %bi : tensor<2x8xf32>
    %t = dtl.tanh %z : tensor<2x8xf32>
    dtl.yield %t : tensor<2x8xf32>
  }
  return %h : tensor<2x8xf32>
}
