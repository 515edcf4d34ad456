"""glibc's allocator (and NumPy's page advice), tuned before anything heavy is imported, so the model's batches
stop paying page faults.

Left alone, glibc serves every allocation over its mmap threshold (which starts at 128 kB and adapts) with
a fresh mmap and returns it with munmap on free, so each forward pass page-faults its activations and
input batches again (issue figures: 1.39 M minor faults against 0.24 M with tcmalloc, ~40% of eager time
in the kernel at batch 8-16). Pinning the threshold at its maximum (32 MB on 64-bit) and keeping freed
memory up to TRIM_THRESHOLD makes those blocks come from the heap and be reused. It is glibc's own mallopt,
so it is compatible with every backend (tcmalloc, the other fix, made OpenVINO abort). Measured in
docs/PERFORMANCE.md.

NumPy's advice to the kernel is switched off too (NUMPY_MADVISE_HUGEPAGE=0, read when numpy is imported,
unless already set): by default it asks for transparent huge pages for every array of 4 MB or more, such as a
decoded 1080p frame (6 MB). Where glibc hands out memory the process has not touched yet, each first touch
then has the kernel zero 2 MB. Measured on the 2-core AMD EPYC (2026-12-05), 600 frames of the 1080p clip
through the monitor, in one process, after each of `nero bench`'s other measures and after another monitor
run (2 rounds): with the advice, 1.1-1.6 ms a frame in the kernel after other work (`perf`: clear_page_erms
under do_huge_pmd_anonymous_page, from within OpenCV) against 0.4-0.5 after a monitor run, and 98.4-105.8
fps (median 100.2) against 104.6-107.4; without it, 0.5-0.8 ms and 100.0-105.5 fps (median 104.0) against
103.1-105.6. `nero replay` of the whole clip, alternating: 103.2-106.7 fps without, 100.0-106.0 with.

NERO_MALLOC=default leaves glibc and NumPy as they are.
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
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):     # not glibc (musl, macOS)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
