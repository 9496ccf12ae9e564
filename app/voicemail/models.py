"""`run.py models pull`: the configured speech and language models from the Hugging Face Hub.

Plain HTTP (httpx) against the Hub's public endpoints, so the same code is tested on a
local server: the file list and checksums from `/api/models/<repo>/tree/<rev>`, each file
from `/<repo>/resolve/<rev>/<path>`. Downloads resume from a `.part` file (HTTP Range),
show progress, and are checked (SHA-256 for large files, the git blob hash for small
ones) before taking their final name; a model directory is complete or absent.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import httpx

from app.config import Config


def whisper_model_name(config: Config, gpu: bool | None = None) -> str:
    name = config.models.whisper
    if name != "auto":
        return name
    if gpu is None:
        gpu = has_gpu()
    return "large-v3-turbo" if gpu else "small"


@lru_cache(maxsize=1)
def has_gpu() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # no CUDA runtime at all is the common CPU case
        return False


def present(config: Config) -> dict[str, dict]:
    whisper = whisper_model_name(config)
    whisper_dir = config.models_dir / f"whisper-{whisper}"
    llm = config.models_dir / config.models.llm_file
    return {
        "whisper": {"name": whisper, "path": str(whisper_dir),
                    "present": (whisper_dir / "model.bin").is_file()},
        "llm": {"name": llm.name, "path": str(llm), "present": llm.is_file()},
    }


WHISPER_REPOS = {
    "tiny": "Systran/faster-whisper-tiny", "base": "Systran/faster-whisper-base",
    "small": "Systran/faster-whisper-small", "medium": "Systran/faster-whisper-medium",
    "large-v2": "Systran/faster-whisper-large-v2", "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json", "vocabulary.json",
                 "vocabulary.txt")
CHUNK = 1 << 20


class PullError(Exception):
    pass


@dataclass
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # large (LFS) files
    git_oid: str | None  # small files: the git blob id


def _list(client: httpx.Client, hub: str, repo: str, revision: str) -> list[RemoteFile]:
    response = client.get(f"{hub}/api/models/{repo}/tree/{revision}")
    if response.status_code != 200:
        raise PullError(f"{repo}: the Hub answered {response.status_code}")
    files = []
    for item in response.json():
        if item.get("type") != "file":
            continue
        lfs = item.get("lfs") or {}
        files.append(RemoteFile(item["path"], lfs.get("size", item.get("size", 0)), lfs.get("oid"),
                                None if lfs else item.get("oid")))
    return files


def _digest_ok(path: Path, remote: RemoteFile) -> bool:
    if remote.sha256:
        h = hashlib.sha256()
    else:
        h = hashlib.sha1()
        h.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest() == (remote.sha256 or remote.git_oid)


def _download(client: httpx.Client, url: str, remote: RemoteFile, dest: Path,
              progress: Callable[[str, int, int], None]) -> None:
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > remote.size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
        if response.status_code == 200 and have:
            have = 0  # the server ignored the range: start over
        elif response.status_code not in (200, 206):
            raise PullError(f"{remote.path}: HTTP {response.status_code}")
        with open(part, "ab" if have else "wb") as f:
            for block in response.iter_bytes(CHUNK):
                f.write(block)
                have += len(block)
                progress(remote.path, have, remote.size)
    if not _digest_ok(part, remote):
        part.unlink()
        raise PullError(f"{remote.path}: checksum mismatch; the download was discarded")
    part.rename(dest)


def _print_progress(name: str, done: int, total: int) -> None:
    pct = 100 * done // total if total else 100
    sys.stderr.write(f"\r  {name}: {done / 1e6:8.1f} / {total / 1e6:.1f} MB ({pct}%)")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def pull_repo(hub: str, repo: str, dest: Path, wanted: Callable[[str], bool], revision: str = "main",
              progress: Callable[[str, int, int], None] = _print_progress) -> list[Path]:
    """Download the wanted files of a repository into `dest`; files already there
    with the right checksum are kept."""
    dest.mkdir(parents=True, exist_ok=True)
    got = []
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0)) as client:
        files = [f for f in _list(client, hub, repo, revision) if wanted(f.path)]
        if not files:
            raise PullError(f"{repo}: none of the expected files is there")
        for remote in files:
            target = dest / Path(remote.path).name
            if target.exists() and _digest_ok(target, remote):
                got.append(target)
                continue
            _download(client, f"{hub}/{repo}/resolve/{revision}/{remote.path}", remote, target, progress)
            got.append(target)
    return got


def pull(config: Config, *, whisper: bool = True, llm: bool = True) -> list[Path]:
    """The configured models into <data dir>/models/ (a speech model directory and the GGUF)."""
    hub = config.models.hub_url.rstrip("/")
    got: list[Path] = []
    if whisper:
        name = whisper_model_name(config)
        repo = WHISPER_REPOS.get(name, name)  # a size, or a repository named directly
        final = config.models_dir / f"whisper-{name}"
        staging = config.models_dir / f".whisper-{name}.partial"
        got += pull_repo(hub, repo, staging, lambda p: p in WHISPER_FILES)
        if final.exists():
            for old in final.iterdir():
                old.unlink()
            final.rmdir()
        staging.rename(final)  # the directory appears only once complete
    if llm:
        llm_file = config.models.llm_file
        got += pull_repo(hub, config.models.llm_repo, config.models_dir, lambda p: p == llm_file)
    return got
