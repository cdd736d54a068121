"""glibc malloc as the server sets it: one arena, big blocks in mappings of their own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

from tests.daemons import start_cli
from twistedspy.allocator import NO_THREAD_CACHE, tune_malloc, with_no_thread_cache

ROOT = Path(__file__).resolve().parent.parent

#: Run in a fresh interpreter (arenas and the mmap threshold are per process): four
#: threads allocate blocks too big for pymalloc; then a 1 MiB block is freed, which
#: makes an untuned glibc raise its mmap threshold, and a 300 KiB one is held.
PROBE = """
import json, sys, threading
from tests.allocators import glibc_stats
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


#: A worker thread frees 7 blocks of each of 31 sizes too big for pymalloc and stays
#: alive (a thread's cache is given back when it ends): glibc's figures before and after.
CACHE_PROBE = """
import json, threading
from tests.allocators import glibc_stats
from twistedspy.allocator import tune_malloc
tune_malloc()
freed, done = threading.Event(), threading.Event()
def work():
    blocks = [bytearray(size) for size in range(520, 1010, 16) for _ in range(7)]
    del blocks
    freed.set()
    done.wait()
worker = threading.Thread(target=work)
before = glibc_stats()
worker.start()
freed.wait()
after = glibc_stats()
done.set()
worker.join()
print(json.dumps([before, after]))
"""


def run_child(source: str, *args: str, tunables: str | None = None) -> Any:
    """What a fresh interpreter prints, as JSON, with only `tunables` for glibc."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))
    }
    environ["PYTHONPATH"] = str(ROOT)
    if tunables is not None:
        environ["GLIBC_TUNABLES"] = tunables
    out = subprocess.run(
        [sys.executable, "-c", source, *args],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(out)


def glibc_figure(stats: str, pattern: str) -> int:
    """
    The number that `pattern` captures in tests.allocators.glibc_stats's line,
    "glibc: N arenas: arena A KiB, mmapped M KiB, in use U KiB, free F KiB".
    """
    found = re.search(pattern, stats)
    if found is None:
        raise SkipTest(f"not glibc: {stats}")
    return int(found[1])


def probe(mode: str) -> tuple[list[str], int, int]:
    """What was applied; glibc's arenas, and KiB in mappings of their own, in a child."""
    applied, stats = run_child(PROBE, mode)
    return applied, glibc_figure(stats, r"(\d+) arenas"), glibc_figure(stats, r"mmapped (\d+)")


def cached_kib(tunables: str | None = None) -> int:
    """KiB that glibc still counts in use after CACHE_PROBE's worker freed its blocks."""
    before, after = run_child(CACHE_PROBE, tunables=tunables)
    in_use = r"in use (\d+) KiB"
    return glibc_figure(after, in_use) - glibc_figure(before, in_use)


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

    def test_no_thread_cache_gives_freed_blocks_back(self) -> None:
        # the control: with glibc's default the freed blocks (some 170 KiB) stay cached
        self.assertGreater(cached_kib(), 100)
        self.assertLess(cached_kib(NO_THREAD_CACHE), 20)
        # a later entry wins, as `make run` relies on to leave the user's choice standing
        self.assertGreater(cached_kib(f"{NO_THREAD_CACHE}:glibc.malloc.tcache_count=7"), 100)

    def test_server_environment(self) -> None:
        self.assertEqual(
            with_no_thread_cache({"HOME": "/"}), {"HOME": "/", "GLIBC_TUNABLES": NO_THREAD_CACHE}
        )
        self.assertEqual(
            with_no_thread_cache({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}),
            {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{NO_THREAD_CACHE}"},
        )
        own = {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=3"}
        self.assertEqual(with_no_thread_cache(own), own)

    def test_units_and_make_run_turn_the_cache_off(self) -> None:
        """The ways of running it that the README gives, and the proof's servers, agree."""
        for unit in ("twistedspy.service", "twistedspy-socket.service"):
            text = (ROOT / "contrib" / unit).read_text()
            self.assertIn(f"Environment=GLIBC_TUNABLES={NO_THREAD_CACHE}\n", text, unit)
        run = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
        self.assertIn(
            f"GLIBC_TUNABLES={NO_THREAD_CACHE}$${{GLIBC_TUNABLES:+:$$GLIBC_TUNABLES}}", run
        )

    def test_proof_servers_run_as_the_units_do(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="twistedspy-allocator-"))
        self.addCleanup(shutil.rmtree, folder, True)
        server = start_cli(folder)
        self.addCleanup(server.stop)
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        tunables = [e for e in environ if e.startswith(b"GLIBC_TUNABLES=")]
        self.assertEqual(len(tunables), 1)
        self.assertIn(NO_THREAD_CACHE.encode(), tunables[0])
