"""Dashboard coverage: Grafana's "Node Exporter Full" (grafana.com 1860) run against
twistedspy and node_exporter side by side.

A real Prometheus scrapes both (job `twistedspy` and job `node`, every 2 s); after
`--seconds` (default 40) every query of every panel in bench/node-exporter-full-panels.json
is run per job through the HTTP API, with `$node` set to the target, `$job` to the job
and `$__rate_interval` to 10s (Grafana's 4 x scrape interval, rounded up). A panel counts
for a job when one of its queries returns data. Prints the counts and the panels only
one of the two fills.

Run: PYTHONPATH=. python bench/dashboard.py [--seconds 40] [--textfile-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.metrics import NODE_EXPORTER, running
from bench.procstat import free_port

PANELS = Path(__file__).resolve().parent / "node-exporter-full-panels.json"
SCRAPE_INTERVAL = 2
RATE_INTERVAL = "10s"


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[str, ...]


def load_panels(path: Path = PANELS) -> list[Panel]:
    return [Panel(p["title"], tuple(p["exprs"])) for p in json.loads(path.read_text())["panels"]]


def fill(expr: str, job: str, instance: str) -> str:
    """A panel's query with the dashboard's variables set as Grafana would set them."""
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$node", instance)
        .replace("$job", job)
    )


def query(prometheus: int, expression: str) -> list[dict[str, Any]]:
    """The result of an instant query; [] for none, or while Prometheus is not up."""
    url = f"http://127.0.0.1:{prometheus}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression}
    )
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            answer = json.load(reply)
    except OSError:
        return []
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def has_data(prometheus: int, panel: Panel, job: str, instance: str) -> bool:
    return any(query(prometheus, fill(e, job, instance)) for e in panel.exprs)


def prometheus_config(targets: dict[str, str]) -> str:
    """Scrape each job's one target every SCRAPE_INTERVAL seconds."""
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        for job, target in targets.items()
    )
    return (
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL}s\n  scrape_timeout: {SCRAPE_INTERVAL}s\n"
        f"scrape_configs:\n{jobs}"
    )


@contextlib.contextmanager
def prometheus_scraping(targets: dict[str, str], folder: Path) -> Iterator[int]:
    """A Prometheus scraping `targets` (job: host:port) until the block ends; its port."""
    (folder / "prometheus.yml").write_text(prometheus_config(targets))
    port = free_port()
    argv = [
        shutil.which("prometheus") or "prometheus",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--config.file={folder / 'prometheus.yml'}",
    ]
    with running(argv, f"http://127.0.0.1:{port}/-/ready"):
        yield port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="scraping before queries")
    parser.add_argument("--textfile-dir", type=Path, help="TextfileDir for both exporters")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="twistedspy-dashboard-"))
    panels = load_panels()
    try:
        spy_port, node_port = free_port(), free_port()
        spy = [sys.executable, "-m", "twistedspy.cli", f"--port={spy_port}",
               f"--log-dir={folder}/logs", f"--message-file={folder}/m.jsonl"]  # fmt: skip
        node = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"]
        if args.textfile_dir is not None:
            spy.append(f"--textfile-dir={args.textfile_dir}")
            node.append(f"--collector.textfile.directory={args.textfile_dir}")
        targets = {"twistedspy": f"127.0.0.1:{spy_port}", "node": f"127.0.0.1:{node_port}"}
        with (
            running(spy, f"http://127.0.0.1:{spy_port}/-/healthy"),
            running(node, f"http://127.0.0.1:{node_port}/metrics"),
            prometheus_scraping(targets, folder) as prometheus,
        ):
            time.sleep(args.seconds)
            filled = {
                job: {p.title for p in panels if has_data(prometheus, p, job, target)}
                for job, target in targets.items()
            }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ours, theirs = filled["twistedspy"], filled["node"]
    print(f"Node Exporter Full, {len(panels)} panels; a panel counts when a query has data")
    print(f"  twistedspy     {len(ours):4d}")
    print(f"  node_exporter  {len(theirs):4d}")
    print(f"  both           {len(ours & theirs):4d}")
    print("only twistedspy: " + "; ".join(sorted(ours - theirs)))
    print("only node_exporter: " + "; ".join(sorted(theirs - ours)))
    print("neither: " + "; ".join(sorted({p.title for p in panels} - ours - theirs)))


if __name__ == "__main__":
    main()
