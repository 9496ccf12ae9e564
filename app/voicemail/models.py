"""The speech and language models: where they live, whether they can be used, and
`run.py models pull`.

Validation (`check_whisper`, `check_llm`, `health`) loads each model the way the engine
does, never reaching the Hub (`local_files_only=True`, and a missing `tokenizer.json` is
refused before faster-whisper would go looking for it online), and answers a `Check`:
`ok`, a short stable `code` and, when not ok, a plain-words `problem` and `fix`. Results
are kept per file state (path, size, modification time), so a model is checked once,
a damaged file is not reloaded for every voicemail, and a file that changes is checked
again. `validate_in_background(config)` runs both checks once at start-up.

Download: `huggingface_hub` (resumes a dropped transfer with HTTP Range, checks the size,
shows progress), plus our own check of each file against the Hub's SHA-256 (large files)
or git blob id (small ones). The revision is pinned by `[models] whisper_revision` /
`llm_revision` when set, else by `REVISIONS` below — "main" for now: no commit hash of these
repositories was found documented, so an operator who wants a fixed model pins one with
those keys. Files go to a staging directory, are validated as models, and only then take
their final name: a model directory (or GGUF) is complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.config import Config

log = logging.getLogger("capteo.voicemail")


def whisper_model_name(config: Config, gpu: bool | None = None) -> str:
    name = config.models.whisper
    if name != "auto":
        return name
    if gpu is None:
        gpu = has_gpu()
    return "large-v3-turbo" if gpu else "small"


# Where an NVIDIA driver shows itself (WSL2's GPU is /dev/dxg): with none of them, CUDA has no
# device to offer, and the answer needs no import of ctranslate2 (0.2 s and ~7 MiB that the
# web process would otherwise pay at every start, with no model installed at all).
_GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg")


@lru_cache(maxsize=1)
def has_gpu() -> bool:
    if not any(os.path.exists(p) for p in _GPU_DEVICE_NODES):
        return False
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # no CUDA runtime at all is the common CPU case
        return False


def whisper_dir(config: Config) -> Path:
    return config.models_dir / f"whisper-{whisper_model_name(config)}"


def llm_path(config: Config) -> Path:
    return config.models_dir / config.models.llm_file


def device() -> str:
    return "cuda" if has_gpu() else "cpu"


def compute_type(config: Config) -> str:
    configured = config.models.whisper_compute_type
    if configured != "auto":
        return configured
    return "int8_float16" if has_gpu() else "int8"


# ---- validation ---------------------------------------------------------------------------------

MULTILINGUAL_VOCABULARY = 51865  # CTranslate2 treats a smaller Whisper vocabulary as English-only
WHISPER_REQUIRED = ("model.bin", "config.json", "tokenizer.json")
PULL_AGAIN = "run `python run.py models pull` again"


@dataclass(frozen=True)
class Check:
    """One model's validation. `code`: "ok", or a short stable name of the problem
    (missing, missing_file, damaged, english_only, mel_mismatch, compute_type,
    no_chat_template, crashes, no_answer); `problem` and `fix`: plain words for an operator."""

    ok: bool
    code: str = "ok"
    problem: str = ""
    fix: str = ""

    def sentence(self) -> str:
        return "usable" if self.ok else f"{self.problem} — {self.fix}" if self.fix else self.problem


OK = Check(True)


def _bad(code: str, problem: str, fix: str = PULL_AGAIN) -> Check:
    return Check(False, code, problem, fix)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


_WHISPER_FILES = (*WHISPER_REQUIRED, "preprocessor_config.json", "vocabulary.json", "vocabulary.txt")


def _whisper_key(path: Path, compute: str, dev: str) -> tuple:
    return ("whisper", str(path), tuple(_stamp(path / f) for f in _WHISPER_FILES), compute, dev)


def _llm_key(path: Path, chat_format: str) -> tuple:
    return ("llm", str(path), _stamp(path), chat_format)


_results: dict[tuple[str, str], tuple[tuple, Check, float]] = {}  # (kind, path) -> (file state, its check)
_results_lock = threading.Lock()


# Failures that may pass by (a GPU out of memory while two loads overlap, a test answer
# killed under load) are checked again after a while; what the file is (missing, English
# only, no chat template...) only when the file changes.
TRANSIENT = frozenset({"damaged", "crashes", "no_answer"})
RECHECK_AFTER_S = 600.0


def _cached(key: tuple) -> Check | None:
    with _results_lock:
        entry = _results.get((key[0], key[1]))
    if not entry or entry[0] != key:
        return None
    check, at = entry[1], entry[2]
    if check.code in TRANSIENT and time.monotonic() - at > RECHECK_AFTER_S:
        return None
    return check


def _remember(key: tuple, check: Check) -> Check:
    with _results_lock:
        _results[(key[0], key[1])] = (key, check, time.monotonic())
    if not check.ok and check.code != "missing":
        log.warning("%s model %s unusable (%s): %s", key[0], key[1], check.code, check.problem)
    return check


def forget() -> None:
    """Drop every remembered result (tests)."""
    with _results_lock:
        _results.clear()


def _whisper_files_check(path: Path) -> Check | None:
    """What can be said without loading: missing files, the vocabulary, the mel bins asked."""
    if not path.is_dir() or not (path / "model.bin").is_file():
        return _bad("missing", f"the speech model is not installed (no {path.name}/model.bin)",
                    "run `python run.py models pull`")
    for name in WHISPER_REQUIRED[1:]:
        if not (path / name).is_file():
            return _bad("missing_file", f"the speech model is incomplete: {name} is missing", PULL_AGAIN)
    try:
        tokenizer = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        model = tokenizer.get("model") or {}
        size = len(model.get("vocab") or {}) + sum(
            1 for t in tokenizer.get("added_tokens") or [] if t.get("content") not in (model.get("vocab") or {}))
    except (OSError, ValueError, AttributeError):
        return _bad("damaged", "tokenizer.json of the speech model is damaged (not readable JSON)")
    if size < MULTILINGUAL_VOCABULARY:
        return _bad("english_only",
                    f"the speech model is English-only ({size} tokens; a multilingual model has "
                    f"{MULTILINGUAL_VOCABULARY}) and Capteo needs French and English",
                    "configure a multilingual size in [models] whisper (e.g. \"small\", not \"small.en\") "
                    "and run `python run.py models pull`")
    return None


def _mels_asked(path: Path) -> int | None:
    try:
        value = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8")).get("feature_size")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _load_whisper(path: Path, compute: str, dev: str) -> tuple[Check, Any]:
    """(check, the loaded WhisperModel when usable)."""
    if problem := _whisper_files_check(path):
        return problem, None
    import ctranslate2  # only once there is a model to load

    allowed = set(ctranslate2.get_supported_compute_types(dev)) | {"default", "auto"}
    if compute not in allowed:
        return _bad("compute_type",
                    f"the compute type \"{compute}\" is not supported on the {dev.upper()} "
                    f"(supported: {', '.join(sorted(allowed - {'auto'}))})",
                    "set [models] whisper_compute_type to \"auto\" or one of these"), None
    from faster_whisper import WhisperModel

    try:
        model = WhisperModel(str(path), device=dev, compute_type=compute, local_files_only=True)
    except Exception as e:  # a truncated or corrupted model.bin, a bad config.json
        log.debug("speech model %s failed to load: %s", path, e)
        return _bad("damaged", "model.bin of the speech model is incomplete or damaged (it does not load)"), None
    if not model.model.is_multilingual:
        return _bad("english_only", "the speech model is English-only and Capteo needs French and English",
                    "configure a multilingual size in [models] whisper and run `python run.py models pull`"), None
    expected = model.model.n_mels
    asked = _mels_asked(path)
    if asked is not None and asked != expected:
        return _bad("mel_mismatch",
                    f"preprocessor_config.json asks for {asked} mel bins but the speech model expects {expected}",
                    PULL_AGAIN), None
    return OK, model


def check_whisper(config: Config, path: Path | None = None, *, compute: str | None = None) -> Check:
    """The speech model at `path` (default: the configured one), validated once per file state."""
    path = path or whisper_dir(config)
    compute = compute or compute_type(config)
    key = _whisper_key(path, compute, device())
    if (known := _cached(key)) is not None:
        return known
    check, model = _load_whisper(path, compute, device())
    del model
    return _remember(key, check)


def check_whisper_files(config: Config) -> Check:
    """The speech model's files, without loading it: for a process that does not run the
    models' work. Complete files count as usable; the models' workers load them."""
    path = whisper_dir(config)
    key = _whisper_key(path, compute_type(config), device())
    if (known := _cached(key)) is not None:
        return known
    return _remember(key, _whisper_files_check(path) or Check(True))


def _gguf_check(path: Path, chat_format: str) -> Check:
    if not path.is_file():
        return _bad("missing", f"the language model is not installed (no {path.name})",
                    "run `python run.py models pull`")
    from llama_cpp import Llama

    try:
        vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception as e:  # not a GGUF, truncated header, unknown architecture
        log.debug("language model %s failed to load: %s", path, e)
        return _bad("damaged", f"{path.name} is incomplete or damaged, or not a GGUF model (it does not load)")
    template = (vocab.metadata or {}).get("tokenizer.chat_template")
    vocab.close()
    if not template and not chat_format:
        return _bad("no_chat_template",
                    f"{path.name} has no chat template, so prompts would be formatted wrongly (Llama-2 style)",
                    "use an instruct GGUF that has one, or name its format in [models] llm_chat_format "
                    "(e.g. \"chatml\")")
    return _answers_in_a_child(path, chat_format)


# A model that loads can still crash llama.cpp when it answers (a kernel the CPU or the
# kernel refuses, a damaged tensor): in the worker that is a SIGSEGV of the whole service,
# then of its restart, voicemail after voicemail. So a first answer is asked for in a
# child process, loaded the way the engine loads it; a crash there is a plain "unusable".
_CHILD = """
import sys
from app.voicemail.models import load_llm
llm = load_llm(sys.argv[1], sys.argv[2], n_ctx=512)
llm.create_chat_completion(messages=[{"role": "user", "content": "Bonjour, rappelez-moi au 514 555 0101."}],
                           max_tokens=4, temperature=0)
"""
CHILD_TIMEOUT_S = 300


def _answers_in_a_child(path: Path, chat_format: str) -> Check:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path), chat_format], cwd=root,
                              capture_output=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return _bad("no_answer", f"{path.name} gave no answer to a test prompt within {CHILD_TIMEOUT_S} s",
                    "use a smaller model or a GPU")
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        log.debug("language model test answer failed: %s", done.stderr[-2000:])
        return _bad("crashes", f"{path.name} loads but crashes when it answers ({how})",
                    "use another build of llama-cpp-python or another GGUF; voicemails are read by the rules meanwhile")
    return OK


def load_llm(path: str | Path, chat_format: str, *, n_ctx: int = 2048) -> Any:
    """The GGUF as the engine uses it: every layer on the GPU when there is one, every
    core on the CPU, the plain CPU kernels (see _plain_cpu_buffers)."""
    from llama_cpp import Llama

    options: dict[str, Any] = {"chat_format": chat_format} if chat_format else {}
    threads = os.cpu_count() or 1  # llama.cpp's default is half the cores: one thread on two
    with _plain_cpu_buffers():
        return Llama(model_path=str(path), n_gpu_layers=-1, n_ctx=n_ctx, verbose=False,
                     n_threads=threads, n_threads_batch=threads, **options)


def check_llm(config: Config, path: Path | None = None) -> Check:
    """The GGUF at `path` (default: the configured one), validated once per file state."""
    path = path or llm_path(config)
    key = _llm_key(path, config.models.llm_chat_format)
    if (known := _cached(key)) is not None:
        return known
    return _remember(key, _gguf_check(path, config.models.llm_chat_format))


@contextmanager
def _plain_cpu_buffers() -> Iterator[None]:
    """Load a GGUF without llama.cpp's "extra" CPU buffer types (AMX tiles, repacked
    weights). Where the CPU has AMX but the kernel does not grant it to the process (seen
    on this project's build machines), every prompt of more than one token crashed the
    whole process with SIGSEGV inside a Q4 matrix product; the plain kernels are the ones
    every x86-64 runs. llama-cpp-python has no argument for it: its defaults are patched
    while the model loads (the slot's lock is held)."""
    import llama_cpp.llama as llama_module

    original = llama_module.llama_cpp.llama_model_default_params

    def defaults():
        params = original()
        params.use_extra_bufts = False
        return params

    llama_module.llama_cpp.llama_model_default_params = defaults
    try:
        yield
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


class ModelSlot:
    """One loaded model for the engine: validated before use, loaded at most once per
    file state; a model that failed is not loaded again until its file changes."""

    def __init__(self, kind: str, config: Config, path: Path, compute: Callable[[], str] | None = None):
        self.kind, self.config, self.path = kind, config, path
        self._compute = compute or (lambda: compute_type(config))
        self._key: tuple | None = None
        self._model: Any = None
        self._lock = threading.Lock()

    def _current_key(self) -> tuple:
        if self.kind == "whisper":
            return _whisper_key(self.path, self._compute(), device())
        return _llm_key(self.path, self.config.models.llm_chat_format)

    def check(self) -> Check:
        """Validated without necessarily loading (a remembered result counts)."""
        if self.kind == "whisper":
            return check_whisper(self.config, self.path, compute=self._compute())
        return check_llm(self.config, self.path)

    def ready(self) -> bool:
        return self.model() is not None

    def model(self) -> Any:
        """The loaded model, or None when unusable (the reason is in `check()`)."""
        with self._lock:
            key = self._current_key()
            if self._model is not None and self._key == key:
                return self._model
            self._model, self._key = None, key
            known = _cached(key)
            if known is not None and not known.ok:
                return None
            if self.kind == "whisper":
                check, self._model = _load_whisper(self.path, key[3], key[4])
                if known is None or not check.ok:
                    _remember(key, check)
                return self._model
            check = known or _remember(key, _gguf_check(self.path, key[3]))
            if not check.ok:
                return None
            try:
                self._model = load_llm(self.path, key[3])
            except Exception as e:  # vocab loaded but not the weights: a truncated file
                log.debug("language model %s failed to load: %s", self.path, e)
                _remember(key, _bad("damaged", f"{self.path.name} is incomplete or damaged (its weights do not load)"))
                return None
            return self._model


class ModelUnusable(RuntimeError):
    pass


# The models service's health where `[models] service_url` is set: app.voicemail.service
# installs it when imported (jobs.voicemail imports it), so this module does not import it.
REMOTE_HEALTH: Callable[..., dict[str, dict]] | None = None


def health(config: Config, *, wait: bool = False) -> dict[str, dict]:
    """Per model: name, path, present, usable (None while being checked), code, problem, fix.
    Without `wait`, never loads a model here: what is not known yet is checked in the background.
    With `[models] service_url` set, the models service's answer (app.voicemail.service: kept a
    few seconds, asked again in the background; unreachable: both unusable, "service_down"),
    and nothing of this box's own models directory is looked at."""
    if config.models.service_url:
        if REMOTE_HEALTH is None:
            raise RuntimeError("[models] service_url is set but app.voicemail.service was not imported")
        return REMOTE_HEALTH(config, wait=wait)
    out: dict[str, dict] = {}
    wpath, lpath = whisper_dir(config), llm_path(config)
    compute = compute_type(config)
    for kind, path, key in (("whisper", wpath, _whisper_key(wpath, compute, device())),
                            ("llm", lpath, _llm_key(lpath, config.models.llm_chat_format))):
        present = (path / "model.bin").is_file() if kind == "whisper" else path.is_file()
        if wait:
            check: Check | None = check_whisper(config, wpath) if kind == "whisper" else check_llm(config, lpath)
        else:
            check = _cached(key)
            if check is None and kind == "whisper":
                check = _whisper_files_check(path)  # cheap: missing files, vocabulary
            elif check is None and not present:
                check = _gguf_check(path, config.models.llm_chat_format)  # "missing", without loading
            if check is None:
                validate_in_background(config)
        name = whisper_model_name(config) if kind == "whisper" else path.name
        out[kind] = {"name": name, "path": str(path), "present": present,
                     "usable": None if check is None else check.ok,
                     **(asdict(check) if check else {"ok": None, "code": "checking", "problem": "", "fix": ""})}
    return out


def present(config: Config) -> dict[str, dict]:
    """Files on disk only (nothing loaded); `health` says whether they are usable."""
    wpath, lpath = whisper_dir(config), llm_path(config)
    return {
        "whisper": {"name": whisper_model_name(config), "path": str(wpath), "present": (wpath / "model.bin").is_file()},
        "llm": {"name": lpath.name, "path": str(lpath), "present": lpath.is_file()},
    }


_background: dict[tuple[str, str, str], threading.Thread] = {}
_background_lock = threading.Lock()


def validate_in_background(config: Config) -> threading.Thread:
    """Check both configured models once, in a daemon thread (start-up); one at a time per model pair."""
    # The configured names, not whisper_dir(): "auto" would ask the GPU question (ctranslate2)
    # here on the start-up path; within one process the names decide the same pair of files.
    pair = (str(config.models_dir), config.models.whisper, str(llm_path(config)))
    with _background_lock:
        running = _background.get(pair)
        if running is not None and running.is_alive():
            return running

        def run() -> None:
            if config.models.service_url:
                return  # the models service checks its own; health() asks it
            # Where the models' work runs in other processes (`run.py worker --models`), this one
            # never loads the speech model (memory, a GPU's): its files are checked instead.
            whisper = check_whisper if config.queue.models_in_process else check_whisper_files
            for check in (whisper, check_llm):
                try:
                    check(config)
                except Exception:  # a check must never take the process down
                    log.exception("model validation failed")

        thread = threading.Thread(target=run, name="capteo-model-check", daemon=True)
        _background[pair] = thread
        thread.start()
    return thread


# ---- download -----------------------------------------------------------------------------------

WHISPER_REPOS = {
    "tiny": "Systran/faster-whisper-tiny", "base": "Systran/faster-whisper-base",
    "small": "Systran/faster-whisper-small", "medium": "Systran/faster-whisper-medium",
    "large-v2": "Systran/faster-whisper-large-v2", "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}
# The revision pulled per repository when the configuration pins none. "main" until a
# commit hash is documented; pin one with [models] whisper_revision / llm_revision.
REVISIONS: dict[str, str] = {repo: "main" for repo in (*WHISPER_REPOS.values(), "Qwen/Qwen2.5-3B-Instruct-GGUF",
                                                         "Qwen/Qwen2.5-7B-Instruct-GGUF")}
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json", "vocabulary.json",
                 "vocabulary.txt")
CHUNK = 1 << 20


class PullError(Exception):
    pass


def _print_progress(name: str, done: int, total: int) -> None:
    pct = 100 * done // total if total else 100
    sys.stderr.write(f"\r  {name}: {done / 1e6:8.1f} / {total / 1e6:.1f} MB ({pct}%)")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _progress_bar(progress: Callable[[str, int, int], None], name: str) -> type:
    """A stand-in for tqdm that huggingface_hub drives; reports to `progress(name, done, total)`."""

    class Bar:
        def __init__(self, *args: Any, total: int | None = None, initial: int = 0, **kwargs: Any) -> None:
            self.desc, self.total, self.n = name, total or 0, initial

        def update(self, n: int = 1) -> None:
            self.n += n
            if n > 0:
                progress(self.desc, self.n, self.total)

        def close(self) -> None:
            pass

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    return Bar


def _digest_ok(path: Path, sha256: str | None, git_oid: str | None) -> bool:
    if sha256:
        h = hashlib.sha256()
    elif git_oid:
        h = hashlib.sha1()  # the git blob id of a small file
        h.update(f"blob {path.stat().st_size}\0".encode())
    else:
        return True
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest() == (sha256 or git_oid)


def pull_repo(hub: str, repo: str, dest: Path, wanted: Callable[[str], bool], revision: str = "main",
              progress: Callable[[str, int, int], None] = _print_progress,
              installed: Path | None = None) -> list[Path]:
    """Download the wanted files of a repository into `dest` (through huggingface_hub);
    files already there from the same commit are kept, and when every file is already in
    `installed` with the right checksum, those are returned and nothing is downloaded.
    Each file is checked against the Hub's SHA-256 or git blob id; a mismatch is deleted
    and raises PullError."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    hub = hub.rstrip("/")
    try:
        info = HfApi(endpoint=hub).model_info(repo, revision=revision, files_metadata=True)
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise PullError(f"{repo}@{revision}: the Hub answered {status}") from None
    except OSError as e:
        raise PullError(f"{repo}: the Hub could not be reached ({e})") from None
    files = [s for s in info.siblings or [] if wanted(s.rfilename)]
    if not files:
        raise PullError(f"{repo}: none of the expected files is there")
    def digests(sibling: Any) -> tuple[str | None, str | None]:
        sha256 = sibling.lfs.sha256 if sibling.lfs else None
        return sha256, None if sha256 else sibling.blob_id

    if installed is not None:
        have = [installed / Path(s.rfilename).name for s in files]
        if all(p.is_file() and _digest_ok(p, *digests(s)) for p, s in zip(have, files, strict=True)):
            return have
    dest.mkdir(parents=True, exist_ok=True)
    commit = info.sha or revision  # every file from the same commit
    got = []
    for sibling in files:
        bar: Any = _progress_bar(progress, sibling.rfilename)
        try:
            path = Path(hf_hub_download(repo, sibling.rfilename, revision=commit, local_dir=dest, endpoint=hub,
                                        cache_dir=dest / ".cache" / "hub", tqdm_class=bar))
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else "?"
            raise PullError(f"{sibling.rfilename}: the Hub answered {status}") from None
        except OSError as e:  # includes huggingface_hub's size "Consistency check failed"
            raise PullError(f"{sibling.rfilename}: {str(e).splitlines()[0]}; the download was discarded") from None
        if not _digest_ok(path, *digests(sibling)):
            path.unlink()
            shutil.rmtree(dest / ".cache" / "huggingface", ignore_errors=True)  # forget it was downloaded
            raise PullError(f"{sibling.rfilename}: checksum mismatch; the download was discarded")
        got.append(path)
    return got


def _revision(config: Config, kind: str, repo: str) -> str:
    pinned = config.models.whisper_revision if kind == "whisper" else config.models.llm_revision
    return pinned or REVISIONS.get(repo, "main")


def pull(config: Config, *, whisper: bool = True, llm: bool = True,
         progress: Callable[[str, int, int], None] = _print_progress) -> list[Path]:
    """The configured models into <data dir>/models/ (a speech model directory and the GGUF).
    Each goes to a staging directory (kept between runs, so finished files are not fetched
    again), is validated as a model, and only then takes its final name."""
    return (_pull_whisper(config, progress) if whisper else []) + (_pull_llm(config, progress) if llm else [])


def _pull_whisper(config: Config, progress: Callable[[str, int, int], None]) -> list[Path]:
    name = whisper_model_name(config)
    repo = WHISPER_REPOS.get(name, name)  # a size, or a repository named directly
    final = config.models_dir / f"whisper-{name}"
    staging = config.models_dir / f".whisper-{name}.partial"
    files = pull_repo(config.models.hub_url, repo, staging, lambda p: p in WHISPER_FILES,
                      _revision(config, "whisper", repo), progress, installed=final)
    if files[0].parent == final:
        return files  # already installed and intact
    check = check_whisper(config, staging)
    if not check.ok and check.code != "compute_type":  # a configuration problem, not the download's
        raise PullError(f"{repo}: downloaded, but not usable: {check.problem}")
    shutil.rmtree(staging / ".cache", ignore_errors=True)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)  # the directory appears only once complete
    return [final / p.name for p in files]


def _pull_llm(config: Config, progress: Callable[[str, int, int], None]) -> list[Path]:
    llm_file, repo = config.models.llm_file, config.models.llm_repo
    staging = config.models_dir / ".llm.partial"
    files = pull_repo(config.models.hub_url, repo, staging, lambda p: p == llm_file,
                      _revision(config, "llm", repo), progress, installed=config.models_dir)
    final = config.models_dir / llm_file
    if files[0] == final:
        return files
    check = check_llm(config, staging / llm_file)
    if not check.ok and check.code != "no_chat_template":  # llm_chat_format can still name it
        raise PullError(f"{repo}: downloaded, but not usable: {check.problem}")
    (staging / llm_file).replace(final)  # the GGUF appears only once complete
    shutil.rmtree(staging, ignore_errors=True)
    return [final]
