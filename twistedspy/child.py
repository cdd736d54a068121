# -*- test-case-name: tests.test_process_worker -*-
"""
The entry point of a worker's child process: `python -m twistedspy.child MODULE ARGS...`
runs MODULE as `__main__` with ARGS as its arguments, without Twisted's TLS.

The child speaks AMP with its parent over a socket pair, never TLS, but
`twisted.internet.tcp` imports pyOpenSSL and cryptography whenever they are installed,
and they are a quarter of the child's memory (docs/performance.md, idle footprint).
Marked missing before anything imports Twisted, they are left out, as Twisted leaves
them out on a machine without them. So this file imports nothing of Twisted's itself.
"""

from __future__ import annotations

import runpy
import sys

#: what Twisted imports for TLS alone, when it finds it installed
TLS_PACKAGES = ("OpenSSL", "cryptography", "service_identity")


def main() -> None:
    for name in TLS_PACKAGES:
        # None in sys.modules makes `import name` raise ImportError (the import system's
        # documented way to block a module).
        sys.modules[name] = None  # type: ignore[assignment]
    module = sys.argv.pop(1)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
