// RUN: dtl-opt %s --dtl-mark-inplace --split-input-file | FileCheck %s

// The update is the last reader of its param and state, and only returns
// its results: it may write them over the old ones.

// CHECK-LABEL: func.func @adamw
// CHECK: dtl.adamw_update {{.*}} {beta1 = {{.*}}, dtl.in_place, eps
func.func @adamw(%p: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %x: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<f32>)
    -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %g = dtl.mul %p, %x : tensor<8xf32>
  %np, %nm, %nv = dtl.adamw_update %p, %g, %m, %v, %lr, %step, %lr {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : tensor<8xf32>, tensor<f32>
  return %np, %nm, %nv : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
}

// -----

// The old param is read after the update: the update must not overwrite it.

// CHECK-LABEL: func.func @read_after
// CHECK: dtl.sgd_update
// CHECK-NOT: dtl.in_place
// CHECK: return
func.func @read_after(%p: tensor<8xf32>, %g: tensor<8xf32>, %buf: tensor<8xf32>, %lr: tensor<f32>)
    -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %new, %newbuf = dtl.sgd_update %p, %g, %buf, %lr, %lr {momentum = 0.9 : f64, weight_decay = 0.0 : f64} : tensor<8xf32>, tensor<f32>
  %old = dtl.neg %p : tensor<8xf32>
  return %old, %new, %newbuf : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
}

// -----

// The new param is read by more than the return, or the state is not an
// argument (a value the step computed): neither is in place.

// CHECK-LABEL: func.func @not_only_returned
// CHECK: dtl.sgd_update
// CHECK-NOT: dtl.in_place
// CHECK: dtl.sgd_update
// CHECK-NOT: dtl.in_place
// CHECK: return
func.func @not_only_returned(%p: tensor<8xf32>, %g: tensor<8xf32>, %buf: tensor<8xf32>, %lr: tensor<f32>)
    -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %new, %newbuf = dtl.sgd_update %p, %g, %buf, %lr, %lr {momentum = 0.9 : f64, weight_decay = 0.0 : f64} : tensor<8xf32>, tensor<f32>
  %twice = dtl.add %new, %new : tensor<8xf32>
  %fresh = dtl.exp %g : tensor<8xf32>
  %new2, %newbuf2 = dtl.sgd_update %fresh, %g, %buf, %lr, %lr {momentum = 0.0 : f64, weight_decay = 0.0 : f64} : tensor<8xf32>, tensor<f32>
  return %twice, %newbuf, %new2, %newbuf2, %new : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
}
