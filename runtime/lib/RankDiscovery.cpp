//===- RankDiscovery.cpp - rank, world size and local rank from the launcher ===//

#include "dtlrt/RankDiscovery.h"

#include <cstdlib>

namespace dtlrt {

LaunchInfo discoverLaunch(const std::function<const char *(const char *)> &getenv) {
  auto number = [&](const char *name, int fallback) {
    const char *v = getenv(name);
    return v && *v ? std::atoi(v) : fallback;
  };
  struct Source {
    const char *launcher, *rank, *size, *localRank, *localSize;
  };
  static const Source sources[] = {
      {"dtl", "DTL_RANK", "DTL_WORLD_SIZE", "DTL_LOCAL_RANK", "DTL_LOCAL_WORLD_SIZE"},
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
      {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE"},
      {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
      {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
  };
  for (const Source &s : sources) {
    if (!getenv(s.rank) || !getenv(s.size))
      continue;
    LaunchInfo info;
    info.launcher = s.launcher;
    info.rank = number(s.rank, 0);
    info.worldSize = number(s.size, 1);
    // A lone Slurm task (salloc, an sbatch shell) is not a distributed launch.
    if (info.launcher == "slurm" && info.worldSize <= 1)
      continue;
    info.localRank = number(s.localRank, info.rank);
    info.localSize = number(s.localSize, info.worldSize);
    return info;
  }
  LaunchInfo single;
  single.launcher = "single";
  return single;
}

} // namespace dtlrt
