"""The app under test: its configuration file, a CSRF token from one of its pages,
and `python run.py` as a real server process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def write_config(directory: Path, **sections: dict) -> Path:
    """A capteo.toml in `directory` whose data dir is `directory/data`."""
    lines = ['[data]', 'dir = "data"', '[demo]', f'create = {str(sections.pop("demo", False)).lower()}']
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            lines.append(f"{k} = {v!r}" if not isinstance(v, bool) else f"{k} = {str(v).lower()}")
    path = directory / "capteo.toml"
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path


def csrf_token(client) -> str:
    """Fetch a page so the CSRF cookie is set, and return the token the page carries."""
    page = client.get("/fr/login")
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert match, "login page has no CSRF field"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python run.py` for real: its own process, port and data directory."""

    def __init__(self, directory: Path, demo: bool = True, extra_env: dict | None = None,
                 script: Path = ROOT / "run.py", queue: dict | None = None, args: tuple = ()):
        self.script = script
        self.args = list(args)
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = write_config(directory, demo=demo, server={"port": self.port},
                                        **({"queue": queue} if queue else {}))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTEO_")}
        self.env.update(extra_env or {})
        self.log = directory / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait for the first 200; returns the seconds it took."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), "--config", str(self.config_path), *self.args],
            cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/fr/", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 40.0) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0
