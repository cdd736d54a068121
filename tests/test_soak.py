# -*- test-case-name: tests.test_soak -*-
"""The soak's allocator figures (tests/allocators.py), read from this very process."""

from __future__ import annotations

import math
import re
import threading

from twisted.trial.unittest import TestCase

from tests.allocators import allocator_stats, allocators_mib, glibc_stats


class AllocatorFiguresTests(TestCase):
    def test_figures_of_this_process(self) -> None:
        """
        Both allocators are read and parsed: pymalloc holds whole 1 MiB arenas (CPython
        3.10+), glibc a heap with part of it in use. A change in either output format
        gives NaN, which fails here rather than in a ten-minute soak.
        """
        arenas, heap, in_use = allocators_mib(allocator_stats())
        for figure in (arenas, heap, in_use):
            self.assertTrue(math.isfinite(figure), allocator_stats())
        self.assertGreaterEqual(arenas, 1.0)
        self.assertEqual(arenas, int(arenas))
        self.assertGreater(heap, 0.0)
        self.assertLessEqual(in_use, heap)

    def test_unreadable_figures(self) -> None:
        self.assertTrue(all(math.isnan(f) for f in allocators_mib("glibc: not available\n")))

    def test_thread_arenas_are_counted(self) -> None:
        """
        Memory that worker threads allocate is held in glibc arenas of their own, which
        mallinfo(3) leaves out; the soak's figure must include it.
        """
        holding = threading.Barrier(4)
        done = threading.Event()

        def hold() -> None:
            block = bytes(64 * 1024)  # below the mmap threshold: from the thread's arena
            holding.wait()
            done.wait(30)
            del block

        threads = [threading.Thread(target=hold) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            holding.wait(30)
            text = glibc_stats()
        finally:
            done.set()
            for thread in threads:
                thread.join()
        figures = re.search(r"glibc: (\d+) arenas: .* in use (\d+) KiB", text)
        self.assertIsNotNone(figures, text)
        assert figures is not None
        self.assertGreaterEqual(int(figures[1]), 2, text)
        self.assertGreaterEqual(int(figures[2]), 3 * 64, text)
