// Included first in every file of a DTL_SANITIZE build. LLVM's headers
// poison the unused parts of their bump allocators by hand when the
// including code is built with ASan, but the prebuilt libMLIR that shares
// those allocators is not instrumented and never unpoisons them: every
// attribute MLIR makes after ours would read as a use-after-poison. Only the
// manual calls are turned off; ASan's own instrumentation stays.
#include <sanitizer/asan_interface.h>
#define __asan_poison_memory_region(p, size) ((void)(p), (void)(size))
#define __asan_unpoison_memory_region(p, size) ((void)(p), (void)(size))
