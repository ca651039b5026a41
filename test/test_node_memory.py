"""The node's malloc settings (dsdrive_ros/node/memory.py): freed camera-sized buffers are reused
instead of being page-faulted in afresh on every camera set."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dsdrive_ros.node.memory import DEFAULTS_ENV, ENV_SETTINGS, keep_freed_image_buffers

# A fresh process: a camera set's buffers (4 cameras x rmw's message + rclpy's array, 1920x1080 bgr8)
# allocated, written and freed, round after round; prints the page faults of one round.
SET_ROUNDS = textwrap.dedent("""
    import ctypes, ctypes.util, resource, sys
    from dsdrive_ros.node.memory import keep_freed_image_buffers
    if sys.argv[1] == "tuned":
        assert keep_freed_image_buffers({}).applied
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    IMAGE = 1920 * 1080 * 3

    def camera_set():
        bufs = [libc.malloc(IMAGE) for _ in range(8)]
        for b in bufs:
            ctypes.memset(b, 1, IMAGE)
        for b in bufs:
            libc.free(b)

    for _ in range(3):  # glibc's dynamic thresholds settle
        camera_set()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        camera_set()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 10)
""")
PAGES_PER_SET = 8 * 1920 * 1080 * 3 // 4096


def _faults_per_set(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", SET_ROUNDS, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_image_buffers_are_reused_without_page_faults():
    defaults = _faults_per_set("defaults")
    tuned = _faults_per_set("tuned")
    # glibc's defaults hand the freed heap back every set: each image is faulted in page by page
    assert defaults > 0.5 * PAGES_PER_SET, defaults
    assert tuned < 0.01 * PAGES_PER_SET, tuned


@pytest.mark.parametrize("name", ENV_SETTINGS)
def test_malloc_settings_from_the_environment_are_kept(name):
    got = keep_freed_image_buffers({name: "1"})
    assert not got.applied and name in got.reason


def test_glibc_defaults_on_request():
    got = keep_freed_image_buffers({DEFAULTS_ENV: "1"})
    assert not got.applied and "defaults kept" in got.reason
