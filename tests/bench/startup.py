"""Start-up and idle footprint of `python run.py` (prints figures; asserts nothing).

    .venv/bin/python tests/bench/startup.py [--runs 5]

Each run starts the real server on a fresh data directory (migrations and demo
included, as on a first start) and on an existing one (a restart), and times
`python run.py` -> first 200 on /fr/. Then it reads the idle process's resident
memory after 5 s. Beside each wall time, the CPU time the server process had used
by its first 200 (all its threads): on a shared machine the wall times move with
the neighbours' load, the CPU time much less. Last, the import of the web app
alone (`import app.web` in a fresh interpreter), wall and CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.app import ROOT, ServerProcess  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


IMPORT = ("import resource, time; t = time.perf_counter(); import app.web; "
          "u = resource.getrusage(resource.RUSAGE_SELF); "
          "print(time.perf_counter() - t, u.ru_utime + u.ru_stime)")


def summary(values: list[float], unit: str = "s") -> str:
    return (f"median {statistics.median(values):.2f} {unit} "
            f"(min {min(values):.2f}, max {max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    first, restart, rss, first_cpu, restart_cpu, imp, imp_cpu = [], [], [], [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            srv = ServerProcess(Path(d), demo=True)
            first.append(srv.start())
            first_cpu.append(cpu_seconds(srv.proc.pid))
            time.sleep(5)
            rss.append(rss_mib(srv.proc.pid))
            srv.stop()
            srv.proc = None
            restart.append(srv.start())
            restart_cpu.append(cpu_seconds(srv.proc.pid))
            srv.stop()
        out = subprocess.run([sys.executable, "-c", IMPORT], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
        imp.append(float(out[0]))
        imp_cpu.append(float(out[1]))
    print(f"runs: {args.runs}")
    print(f"first start (empty data dir) -> first 200: {summary(first)}; CPU by then {summary(first_cpu)}")
    print(f"restart (existing data dir)  -> first 200: {summary(restart)}; CPU by then {summary(restart_cpu)}")
    print(f"idle resident memory after 5 s: median {statistics.median(rss):.0f} MiB")
    print(f"import app.web: {summary(imp)}; CPU {summary(imp_cpu)}")


if __name__ == "__main__":
    main()
