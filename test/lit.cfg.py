# lit configuration for dtlc: FileCheck tests of every stage, diagnostics
# tests, and end-to-end runs of generated programs under mpirun.
import os

import lit.formats

config.name = "dtlc"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".dtl", ".mlir", ".test"]
config.excludes = ["Inputs", "unit", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.dtl_obj_root, "test")

config.environment["PATH"] = os.pathsep.join(
    [config.dtl_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", os.environ["PATH"])]
)
# Open MPI refuses root unless told; tests on 2 cores start up to 4 ranks, one
# thread each so ranks do not fight over cores.
config.environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
config.environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
config.environment["OMP_NUM_THREADS"] = "1"
config.environment["OPENBLAS_NUM_THREADS"] = "1"
# The sanitized build (CMakePresets.json, asan) runs its tools with these.
for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    if name in os.environ:
        config.environment[name] = os.environ[name]

config.substitutions.append(("%mpirun", "mpirun --oversubscribe --bind-to none -np"))
config.substitutions.append(("%examples", os.path.join(config.dtl_src_root, "examples")))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))
config.substitutions.append(("%python", "/usr/bin/python3"))

# dtlc was configured with nvcc: --target=cuda builds executables (which CI
# compiles and links without running; see test/GPU for runs on a GPU).
if config.dtl_cuda:
    config.available_features.add("cuda")
