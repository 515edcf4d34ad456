"""glibc's allocator, tuned before anything heavy is imported, so the model's batches stop paying page faults.

Left alone, glibc serves every allocation over its mmap threshold (which starts at 128 kB and adapts) with
a fresh mmap and returns it with munmap on free, so each forward pass page-faults its activations and
input batches again (issue figures: 1.39 M minor faults against 0.24 M with tcmalloc, ~40% of eager time
in the kernel at batch 8-16). Pinning the threshold at its maximum (32 MB on 64-bit) and keeping freed
memory up to TRIM_THRESHOLD makes those blocks come from the heap and be reused. It is glibc's own mallopt,
so it is compatible with every backend (tcmalloc, the other fix, made OpenVINO abort). Measured in
docs/PERFORMANCE.md; NERO_MALLOC=default leaves glibc as it is.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20      # glibc's largest (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 512 * 2**20     # freed heap kept for reuse, up to this much


def tune_allocator() -> bool:
    """True if glibc took the settings (False on other C libraries, or when NERO_MALLOC=default)."""
    if os.environ.get("NERO_MALLOC") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):     # not glibc (musl, macOS)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
