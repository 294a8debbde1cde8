//===- Init.cpp - parameter initialisation, slice by slice ----------------===//

#include "dtlrt/Init.h"
#include "dtlrt/Data.h"

namespace dtlrt {

void forEachLocal(const TensorSpec &spec, const Context &ctx,
                  const std::function<void(int64_t, int64_t)> &fn) {
  size_t rank = spec.localShape.size();
  std::vector<int64_t> offset(rank), index(rank, 0);
  for (size_t d = 0; d < rank; ++d)
    offset[d] = ctx.indexAlong(spec.dimAxes[d]) * spec.localShape[d];
  int64_t n = spec.localSize();
  for (int64_t local = 0; local < n; ++local) {
    int64_t global = 0;
    for (size_t d = 0; d < rank; ++d) {
      int64_t at = offset[d] + index[d];
      if (int(d) == spec.interleaveDim)
        at = spec.declaredRun(at).first;
      if (at < 0) { // a hole: in no declared place
        global = -1;
        break;
      }
      global = global * spec.globalShape[d] + at;
    }
    if (global >= 0)
      fn(local, global);
    for (int d = (int)rank - 1; d >= 0; --d) {
      if (++index[d] < spec.localShape[d])
        break;
      index[d] = 0;
    }
  }
}

void initParam(const TensorSpec &spec, uint64_t seed, const Context &ctx, void *out) {
  forEachLocal(spec, ctx, [&](int64_t local, int64_t global) {
    double v = 0;
    if (spec.init == Init::Ones)
      v = 1;
    else if (spec.init == Init::Normal)
      v = spec.initA + spec.initB * normalAt(seed, spec.name, global);
    else if (spec.init == Init::Uniform)
      v = spec.initA + (spec.initB - spec.initA) * uniformAt(seed, spec.name, global);
    if (spec.dtype == DType::F64)
      static_cast<double *>(out)[local] = v;
    else
      static_cast<float *>(out)[local] = float(v);
  });
}

} // namespace dtlrt
