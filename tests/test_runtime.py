"""keep_freed_memory: large blocks come from malloc's heap and stay there once freed."""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

PROBE = r"""
import ctypes, json, os, sys
from smoothvla.runtime import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
on = keep_freed_memory() if sys.argv[1] == "keep" else False
block = bytearray(200 << 20)
mapped = libc.mallinfo2().hblkhd
del block
print(json.dumps({"on": on, "mapped": mapped, "heap_free": libc.mallinfo2().fordblks,
                  "env": os.environ.get("MALLOC_MMAP_MAX_")}))
"""


def _probe(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**environ, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_default_malloc_maps_and_unmaps_a_large_block():
    r = _probe("default")
    assert r["mapped"] >= 200 << 20 and r["heap_free"] < 200 << 20


def test_kept_memory_serves_the_block_from_the_heap_and_keeps_it():
    r = _probe("keep")
    assert r["on"] and r["env"] == "0"  # worker processes inherit the setting
    assert r["mapped"] < 200 << 20 and r["heap_free"] >= 200 << 20


def test_a_users_own_setting_wins():
    r = _probe("keep", MALLOC_MMAP_MAX_="65536")
    assert not r["on"] and r["env"] == "65536"
    assert r["mapped"] >= 200 << 20
