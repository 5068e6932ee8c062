"""Hand memory freed by large intermediate frames back to the system.

glibc and Arrow's allocator keep freed blocks for reuse, so after building a million rows' raw
features the process would hold hundreds of MB of garbage under the next stage's peak. Called
between the large steps of loading and training; a no-op where the allocators do not support it.
"""

from __future__ import annotations

import gc


def release_freed_memory() -> None:
    """Collect garbage, then return freed Arrow and glibc heap memory to the system."""
    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):  # pragma: no cover - pyarrow is a dependency of pandas str
        pass
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass
