"""Start-up and idle footprint of `python run.py` (prints figures; asserts nothing).

    .venv/bin/python tests/bench/startup.py [--runs 5]

Each run starts the real server on a fresh data directory (migrations and demo
included, as on a first start) and on an existing one (a restart), and times
`python run.py` -> first 200 on /fr/. Then it reads the idle process's resident
memory after 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.app import ServerProcess  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    first, restart, rss = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            srv = ServerProcess(Path(d), demo=True)
            first.append(srv.start())
            time.sleep(5)
            rss.append(rss_mib(srv.proc.pid))
            srv.stop()
            srv.proc = None
            restart.append(srv.start())
            srv.stop()
    print(f"runs: {args.runs}")
    print(f"first start (empty data dir) -> first 200: median {statistics.median(first):.2f} s "
          f"(min {min(first):.2f}, max {max(first):.2f})")
    print(f"restart (existing data dir)  -> first 200: median {statistics.median(restart):.2f} s "
          f"(min {min(restart):.2f}, max {max(restart):.2f})")
    print(f"idle resident memory after 5 s: median {statistics.median(rss):.0f} MiB")


if __name__ == "__main__":
    main()
