"""glibc malloc as the server sets it: one arena, big blocks in mappings of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SkipTest, TestCase

from twistedspy.allocator import tune_malloc

ROOT = Path(__file__).resolve().parent.parent

#: Run in a fresh interpreter (arenas and the mmap threshold are per process): four
#: threads allocate blocks too big for pymalloc; then a 1 MiB block is freed, which
#: makes an untuned glibc raise its mmap threshold, and a 300 KiB one is held.
PROBE = """
import json, sys, threading
from proof.traced_server import glibc_stats
from twistedspy.allocator import tune_malloc
applied = tune_malloc() if sys.argv[1] == "tuned" else []
def work():
    kept = [bytearray(2000) for _ in range(200)]
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
del threads
big = bytearray(1 << 20)
del big
held = bytearray(300 * 1024)
print(json.dumps([applied, glibc_stats()]))
"""


def probe(mode: str) -> tuple[list[str], int, int]:
    """What was applied; glibc's arenas, and KiB in mappings of their own, in a child."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))
    }
    environ["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    applied, stats = json.loads(out)
    if "not available" in stats:
        raise SkipTest(f"not glibc: {stats}")
    # "glibc: N arenas: arena A KiB, mmapped M KiB, ..."
    words = stats.replace(",", "").split()
    return applied, int(words[1]), int(words[words.index("mmapped") + 1])


class AllocatorTests(TestCase):
    def test_one_arena_and_big_blocks_mapped(self) -> None:
        applied, arenas, mapped = probe("tuned")
        self.assertEqual(applied, ["M_ARENA_MAX=1", "M_MMAP_THRESHOLD=131072"])
        self.assertEqual(arenas, 1)
        # the control: without the settings, the same work gives what they prevent
        applied, plain_arenas, plain_mapped = probe("plain")
        self.assertEqual(applied, [])
        self.assertGreater(plain_arenas, 1)
        self.assertGreaterEqual(mapped - plain_mapped, 300)  # the held 300 KiB block

    def test_the_environment_wins(self) -> None:
        self.assertEqual(tune_malloc({"MALLOC_ARENA_MAX": "4"}), ["M_MMAP_THRESHOLD=131072"])
        tunables = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"
        self.assertEqual(tune_malloc({"GLIBC_TUNABLES": tunables}), [])
