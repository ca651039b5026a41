"""glibc malloc settings for a process that takes camera images of several MB each.

Every raw camera message the node takes allocates two buffers of the image's size (rmw's message,
then rclpy's Python array), and frees them once the frame is reduced. glibc serves these from the
heap only after its *dynamic* mmap threshold has risen past the image size, and gives the freed top
of the heap back to the kernel as soon as it exceeds twice that threshold. With four 6 MB images
taken one after another, that happens on every set, so every image was page-faulted in afresh: at
1920x1080 x4 some runs of the same bench settled at e2e p50 ~75 ms instead of ~37 ms, with the time
in transport and camera sync (bench/results/camera_res.json, ``malloc_ab``).

Fixed thresholds (``mallopt``) keep freed image buffers in the heap for reuse: buffers up to 32 MiB
(the most glibc accepts; a 1920x1200 rgba8 image is 9.2 MB) come from the heap, and up to 256 MiB
of freed heap stays mapped. Settings given in the environment (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``) are left as they are, and DSDRIVE_MALLOC_DEFAULTS=1
keeps glibc's defaults (to measure the difference); on a C library without ``mallopt`` (musl)
nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import NamedTuple, Optional

__all__ = ["DEFAULTS_ENV", "MallocSettings", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_image_buffers"]

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024    # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 256 * 1024 * 1024
ENV_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
DEFAULTS_ENV = "DSDRIVE_MALLOC_DEFAULTS"


class MallocSettings(NamedTuple):
    applied: bool
    reason: str  # what was set, or why nothing was


def keep_freed_image_buffers(environ: Optional[dict[str, str]] = None) -> MallocSettings:
    """Set this process's malloc thresholds (see the module text). Call once, early."""
    env = os.environ if environ is None else environ
    if env.get(DEFAULTS_ENV) == "1":
        return MallocSettings(False, f"malloc: glibc defaults kept ({DEFAULTS_ENV}=1)")
    given = [k for k in ENV_SETTINGS if env.get(k)]
    if given:
        return MallocSettings(False, f"malloc settings from the environment kept ({', '.join(given)})")
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return MallocSettings(False, f"no mallopt in the C library ({name}): malloc defaults kept")
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return MallocSettings(False, "mallopt refused the thresholds: malloc defaults kept")
    return MallocSettings(True, f"malloc: buffers up to {MMAP_THRESHOLD >> 20} MiB from the heap, "
                                f"up to {TRIM_THRESHOLD >> 20} MiB of it kept for reuse")
