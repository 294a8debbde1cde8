//===- RankDiscovery.h - who am I, from the launcher's variables -*- C++ -*-===//

#ifndef DTLRT_RANKDISCOVERY_H
#define DTLRT_RANKDISCOVERY_H

#include <functional>
#include <string>

namespace dtlrt {

struct LaunchInfo {
  int rank = 0, worldSize = 1, localRank = 0, localSize = 1;
  std::string launcher; ///< dtl, torchrun, openmpi, pmi, slurm, single
};

/// Reads the launcher's variables in the order of docs/conventions: explicit
/// DTL_RANK/DTL_WORLD_SIZE, torchrun, Open MPI, PMI, Slurm (only with more than
/// one task), else a single process. `getenv` is injectable for tests.
LaunchInfo discoverLaunch(const std::function<const char *(const char *)> &getenv);

} // namespace dtlrt

#endif // DTLRT_RANKDISCOVERY_H
