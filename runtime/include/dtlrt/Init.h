//===- Init.h - a rank's slice of a global tensor ---------------*- C++ -*-===//

#ifndef DTLRT_INIT_H
#define DTLRT_INIT_H

#include "dtlrt/Context.h"

#include <functional>

namespace dtlrt {

/// Calls fn(local flat index, global flat index) for each element this rank
/// holds of `spec`, given the mesh position in `ctx`. The global index is
/// the element's place in the tensor as declared, however it is stored.
void forEachLocal(const TensorSpec &spec, const Context &ctx,
                  const std::function<void(int64_t, int64_t)> &fn);

/// Fills this rank's slice of a param from its initializer. Element i of the
/// global tensor depends only on (seed, name, i), so every mesh gets the
/// same model.
void initParam(const TensorSpec &spec, uint64_t seed, const Context &ctx, void *out);

} // namespace dtlrt

#endif // DTLRT_INIT_H
