"""
pytest set-up shared by every test module: the kind of each test, and the running order.

Each test file has a kind (docs/architecture.md, "Tests"), so that `pytest -m unit` runs in
seconds while `make test` still runs everything:

- `unit`: in one process, no server process, no browser (a tool such as `ps` or `htpasswd`
  may be run once as ground truth);
- `system`: a real server on 127.0.0.1:0, a real twistd or twistedspy process, real tools;
- `browser`: headless Chromium;
- `slow`: besides its kind, a file or test that takes several seconds.

The table is by file, with a class or a test named where it differs from its file, so that
no test file has to carry markers of its own. The most specific entry wins.
"""

from __future__ import annotations

from typing import Final

import pytest

UNIT: Final = ("unit",)
SYSTEM: Final = ("system",)
BROWSER: Final = ("browser", "slow")

#: the kind of every test file (a file missing here fails tests/test_repository.py)
KINDS: Final[dict[str, tuple[str, ...]]] = {
    "test_accounts.py": UNIT,
    "test_allocator.py": SYSTEM,
    "test_auth.py": UNIT,
    "test_browser.py": BROWSER,
    "test_config.py": UNIT,
    "test_connection_login.py": SYSTEM,
    "test_collectors.py": UNIT,
    "test_contract.py": SYSTEM,
    "test_cpu.py": UNIT,
    "test_disclosure.py": SYSTEM,
    "test_dashboard.py": (*SYSTEM, "slow"),
    "test_diskfree.py": UNIT,
    "test_diskio.py": UNIT,
    "test_dispatch.py": UNIT,
    "test_entrypoints.py": SYSTEM,
    "test_faults.py": SYSTEM,
    "test_exporter_readers.py": SYSTEM,
    "test_first_minute.py": SYSTEM,
    "test_fuzz_regressions.py": UNIT,
    "test_golden.py": UNIT,
    "test_hostile.py": (*SYSTEM, "slow"),
    "test_hwmon.py": UNIT,
    "test_hwmon.py::FamiliesTests": SYSTEM,
    "test_index.py": UNIT,
    "test_inflight.py": UNIT,
    "test_integration.py": SYSTEM,
    "test_journal.py": UNIT,
    "test_journal_events.py": SYSTEM,
    "test_masking.py": UNIT,
    "test_masking.py::LiveTests": SYSTEM,
    "test_maxclients.py": SYSTEM,
    "test_meminfo.py": UNIT,
    "test_memo.py": UNIT,
    "test_message.py": SYSTEM,
    "test_message.py::ChromiumTests": BROWSER,
    "test_metrics.py": SYSTEM,
    "test_metrics_golden.py": UNIT,
    "test_module_plugins.py": UNIT,
    "test_modulesdir.py": SYSTEM,
    "test_negotiation.py": UNIT,
    "test_network.py": UNIT,
    "test_network_fuzz.py": SYSTEM,
    "test_node_exporter.py": SYSTEM,
    "test_ownership.py": SYSTEM,
    "test_packaging.py": (*SYSTEM, "slow"),
    "test_pagecache.py": UNIT,
    "test_pages_live.py": SYSTEM,
    "test_parser.py": UNIT,
    "test_parser_properties.py": (*UNIT, "slow"),
    "test_passwd.py": SYSTEM,
    "test_pressure.py": UNIT,
    "test_pools.py": UNIT,
    "test_process_page.py": SYSTEM,
    "test_process_worker.py": SYSTEM,
    "test_process_worker.py::LargeBytesTests": UNIT,
    "test_process_worker.py::RowsTests": UNIT,
    "test_processes.py": UNIT,
    "test_procfs.py": SYSTEM,
    "test_procfs_process.py": UNIT,
    "test_procfs_process.py::LiveTests": SYSTEM,
    "test_prometheus.py": (*SYSTEM, "slow"),
    "test_protocol.py": UNIT,
    "test_query.py": UNIT,
    "test_render.py": UNIT,
    "test_repository.py": UNIT,
    "test_response.py": UNIT,
    "test_saturation_vs_node_exporter.py": SYSTEM,
    "test_security.py": SYSTEM,
    "test_security.py::TLSTests::test_chromium_gets_the_page": BROWSER,
    "test_shutdown.py": (*SYSTEM, "slow"),
    "test_sockets.py": UNIT,
    "test_sockets.py::LiveTests": SYSTEM,
    "test_soak.py": UNIT,
    "test_systemd.py": SYSTEM,
    "test_textfile.py": SYSTEM,
    "test_thresholds.py": UNIT,
    "test_watchdog.py": UNIT,
}


def kinds_of(item: pytest.Item) -> tuple[str, ...]:
    """The markers KINDS gives a test: its own entry, else its class's, else its file's."""
    file = item.path.name
    owner = getattr(item, "cls", None)
    keys = [file]
    if owner is not None:
        keys += [f"{file}::{owner.__name__}", f"{file}::{owner.__name__}::{item.name}"]
    else:
        keys.append(f"{file}::{item.name}")
    for key in reversed(keys):
        if key in KINDS:
            return KINDS[key]
    return SYSTEM  # until the file is given its kind; tests/test_repository.py says so


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Mark each test with its kind, and run trial TestCases before pytest-twisted tests:
    once pytest-twisted has started the global reactor, later trial cases in the same run
    fail with a dirty reactor.
    """
    from twisted.trial.unittest import SynchronousTestCase

    for item in items:
        for kind in kinds_of(item):
            item.add_marker(kind)

    def uses_pytest_twisted(item: pytest.Item) -> bool:
        owner = getattr(item, "cls", None)
        return not (owner is not None and issubclass(owner, SynchronousTestCase))

    items.sort(key=uses_pytest_twisted)
