//===- GradCheck.cpp - gradients against central finite differences -------===//

#include "Trainer.h"

#include "dtlrt/Data.h"
#include "dtlrt/Init.h"

#include <cmath>
#include <cstdio>

namespace dtlrt {

/// Central differences of the forward loss against the gradient function,
/// on a spread of elements of every param, on the first training batch.
int Trainer::checkGrads() {
  if (!p_.gradStep.fn || !p_.evalStep.fn) {
    std::fprintf(stderr, "error: this program was compiled without a gradient function\n");
    return 1;
  }
  if (p_.storesBf16) {
    std::fprintf(stderr,
                 "error: --check-grads needs f32 or f64 storage: this program stores bf16 "
                 "(precision = bf16), whose 3 significant digits drown a finite difference; "
                 "build it with --precision=f64 to check its gradients\n");
    return 1;
  }
  train_->fill(ctx_, inputs_, [&](int64_t row) { return sampler_->at(row); });
  Step &grad = bind(p_.gradStep), &forward = bind(p_.evalStep);
  // Step 1: dropout draws its (fixed) mask, so its gradient is checked too.
  setScalar(Role::Step, 1.0);
  call(grad);
  bool f64 = realType() == DType::F64;
  double h = f64 ? 1e-6 : 1e-2, tolerance = f64 ? 1e-5 : 5e-2;
  bool allOk = true;
  for (size_t r = 0; r < p_.gradStep.results.size(); ++r) {
    const TensorSpec &g = p_.gradStep.results[r];
    if (g.role != Role::Grad)
      continue;
    const TensorSpec *param = nullptr;
    for (const TensorSpec &t : p_.gradStep.args)
      if (t.name == g.name)
        param = &t;
    int64_t total = numElements(param->globalShape);
    double worst = 0;
    int checked = 0;
    for (int k = 0; k < o_.checkGrads && k < total; ++k) {
      int64_t element = int64_t(hashIndex(p_.seed, g.name + ".check", k) % total);
      // Every rank holding the element perturbs it; its analytic gradient is
      // averaged over the holders (they agree) so rank 0 sees it too.
      double analytic[2] = {0, 0};
      Buffer &paramBuffer = state_.at(param->name);
      void *values = paramBuffer.data();
      std::vector<int64_t> held;
      forEachLocal(*param, ctx_, [&](int64_t local, int64_t global) {
        if (global != element)
          return;
        held.push_back(local);
        analytic[0] +=
            readScalar(static_cast<char *>(grad.hostResults[r]) + local * sizeOf(g.dtype), g.dtype);
        analytic[1] += 1;
      });
      MPI_Allreduce(MPI_IN_PLACE, analytic, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      double exact = analytic[0] / analytic[1];
      auto lossWith = [&](double delta) {
        std::vector<double> saved;
        for (int64_t local : held) {
          char *p = static_cast<char *>(values) + local * sizeOf(param->dtype);
          saved.push_back(readScalar(p, param->dtype));
          writeScalar(p, param->dtype, saved.back() + delta);
        }
        toDevice(paramBuffer);
        call(forward);
        for (size_t i = 0; i < held.size(); ++i)
          writeScalar(static_cast<char *>(values) + held[i] * sizeOf(param->dtype), param->dtype,
                      saved[i]);
        toDevice(paramBuffer);
        return forward.scalarResult(Role::Loss);
      };
      double numeric = (lossWith(h) - lossWith(-h)) / (2 * h);
      double error =
          std::fabs(exact - numeric) / std::max(std::fabs(exact) + std::fabs(numeric), 1e-3);
      worst = std::max(worst, error);
      ++checked;
    }
    bool ok = worst <= tolerance;
    allOk &= ok;
    if (rank_ == 0)
      std::printf("gradcheck %s: %d elements, max relative error %.3e (tolerance %.0e) %s\n",
                  g.name.c_str(), checked, worst, tolerance, ok ? "ok" : "FAILED");
  }
  return allOk ? 0 : 1;
}

} // namespace dtlrt
