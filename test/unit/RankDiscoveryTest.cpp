//===- RankDiscoveryTest.cpp - launcher variables -> rank and world -------===//

#include "dtlrt/RankDiscovery.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

using dtlrt::discoverLaunch;
using dtlrt::LaunchInfo;

namespace {

LaunchInfo launchWith(const std::map<std::string, std::string> &env) {
  return discoverLaunch([&](const char *name) -> const char * {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(RankDiscovery, NothingSetIsOneProcess) {
  LaunchInfo info = launchWith({});
  EXPECT_EQ(info.launcher, "single");
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.worldSize, 1);
}

TEST(RankDiscovery, OpenMpi) {
  LaunchInfo info = launchWith({{"OMPI_COMM_WORLD_RANK", "3"},
                                {"OMPI_COMM_WORLD_SIZE", "4"},
                                {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_EQ(info.launcher, "openmpi");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.worldSize, 4);
  EXPECT_EQ(info.localRank, 1);
  EXPECT_EQ(info.localSize, 2);
}

TEST(RankDiscovery, TorchrunComesBeforeMpi) {
  LaunchInfo info = launchWith({{"RANK", "1"},
                                {"WORLD_SIZE", "2"},
                                {"LOCAL_RANK", "1"},
                                {"OMPI_COMM_WORLD_RANK", "0"},
                                {"OMPI_COMM_WORLD_SIZE", "1"}});
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.localRank, 1);
}

TEST(RankDiscovery, ExplicitDtlVariablesWin) {
  LaunchInfo info =
      launchWith({{"DTL_RANK", "2"}, {"DTL_WORLD_SIZE", "8"}, {"RANK", "0"}, {"WORLD_SIZE", "2"}});
  EXPECT_EQ(info.launcher, "dtl");
  EXPECT_EQ(info.rank, 2);
  EXPECT_EQ(info.worldSize, 8);
}

TEST(RankDiscovery, PmiFromHydra) {
  LaunchInfo info = launchWith({{"PMI_RANK", "5"}, {"PMI_SIZE", "6"}});
  EXPECT_EQ(info.launcher, "pmi");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.localRank, 5); // no local variables: the global ones stand in
}

TEST(RankDiscovery, SlurmOnlyWithSeveralTasks) {
  EXPECT_EQ(launchWith({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}}).launcher, "single");
  LaunchInfo info =
      launchWith({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "1"}});
  EXPECT_EQ(info.launcher, "slurm");
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.worldSize, 2);
}

} // namespace
