# -*- test-case-name: tests.test_entrypoints -*-
"""twistedspy for `twistd -ny spy.tac` (foreground) or `twistd -y spy.tac` (daemon).

Settings: built-in defaults, then the file named by $TWISTEDSPY_CONFIG, else spy.conf
beside this file if there is one. twistd does not put this folder on sys.path: install
twistedspy (`pip install .`) or run with PYTHONPATH set to the repository.

glibc reads its per-thread malloc caches' size only at the start of a process: start
twistd with GLIBC_TUNABLES=glibc.malloc.tcache_count=0, as `make run` and the systemd
units do, to keep them from holding some 2 MiB (twistedspy/allocator.py).
"""

import sys
from pathlib import Path

from twisted.application import service

from twistedspy.config import ConfigError, load_settings
try:
    # twistd runs a .tac with __file__ set to its path.
    settings = load_settings({}, None, default_dir=Path(__file__).resolve().parent)
except ConfigError as e:
    sys.stderr.write(f"twistedspy: {e}\n")
    raise SystemExit(1) from None

# Imported once the settings are good, so a config mistake is reported before anything loads.
from twistedspy.service import make_command_line_service

application = service.Application("twistedspy")
make_command_line_service(settings).setServiceParent(application)
