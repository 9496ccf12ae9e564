"""Tiny random models, generated locally, so tests run the real faster-whisper
(CTranslate2) and llama-cpp-python loading and inference code without downloading
anything. Their output is gibberish; tokenizers, prompts, decoding loops, language
detection and grammar-constrained sampling are the real ones."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"  # multilingual.tiktoken: from openai-whisper (MIT, see its LICENSE)
CACHE = Path(__file__).resolve().parents[1] / ".model-cache"
VERSION = 1  # bump whenever what the make_* functions write changes
# Settings that make the tiny whisper model quick: one beam, no temperature fallback.
FAST = {"CAPTEO_MODELS_WHISPER_BEAM_SIZE": "1", "CAPTEO_MODELS_WHISPER_TEMPERATURE_FALLBACK": "false"}

# Whisper's language tokens, in the order of whisper/tokenizer.py LANGUAGES (99: "yue" is large-v3 only).
WHISPER_LANGUAGES = (  # noqa: SIM905 -- reads like whisper's own list
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur "
    "hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si "
    "km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha "
    "ba jw su"
).split()


# GPT-2's byte-to-unicode mapping, the alphabet of `tokenizers`' ByteLevel: printable bytes
# map to themselves, the others to chr(256 + i).
_PRINTABLE = [*range(33, 127), *range(161, 173), *range(174, 256)]
_BYTE_LEVEL = {b: chr(b) for b in _PRINTABLE} | {
    b: chr(256 + i) for i, b in enumerate(b for b in range(256) if b not in _PRINTABLE)
}


def _byte_level(token: bytes) -> str:
    return token.decode("latin-1").translate(_BYTE_LEVEL)


def _whisper_tokenizer():
    """OpenAI's multilingual Whisper tokenizer as a `tokenizers` BPE (what HF's tokenizer.json holds):
    merges rebuilt from the tiktoken ranks, then the special tokens in OpenAI's order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    ranks = {}
    for line in (DATA / "multilingual.tiktoken").read_text().splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    # tiktoken merges the pair whose result has the lowest rank: order merges by that rank.
    merges = sorted(
        (rank, ranks[t[:i]], ranks[t[i:]], _byte_level(t[:i]), _byte_level(t[i:]))
        for t, rank in ranks.items()
        for i in range(1, len(t))
        if t[:i] in ranks and t[i:] in ranks
    )
    vocab = {_byte_level(t): rank for t, rank in ranks.items()}
    tokenizer = Tokenizer(models.BPE(vocab, [(a, b) for *_, a, b in merges]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2 regex = Whisper's
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [
            "<|endoftext|>",
            "<|startoftranscript|>",
            *(f"<|{code}|>" for code in WHISPER_LANGUAGES),
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nocaptions|>",
            "<|notimestamps|>",
            *(f"<|{i * 0.02:.2f}|>" for i in range(1501)),
        ]
    )
    # CTranslate2 calls a Whisper model multilingual only at the full 51865 tokens.
    assert tokenizer.token_to_id("<|notimestamps|>") == 50363 and tokenizer.get_vocab_size() == 51865
    return tokenizer


def make_tiny_whisper(dest: Path, *, english_only: bool = False, layers: int = 2, heads: int = 4, d: int = 64,
                      n_mels: int = 80) -> Path:
    """A faster-whisper model directory: random weights (2+2 layers, width 64), real tokenizer.
    `english_only`: one token fewer (51864), which CTranslate2 reads as an English-only model.
    `layers`, `heads`, `d`: another size's shape (tests/bench/whisper_sizes.py times them)."""
    from ctranslate2.specs import whisper_spec

    tokenizer = _whisper_tokenizer()
    vocabulary = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
    if english_only:
        vocabulary = vocabulary[:-1]
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.normal(0, d**-0.5, shape).astype(np.float32)

    def linear(spec, n_out, n_in):
        spec.weight, spec.bias = rand(n_out, n_in), np.zeros(n_out, np.float32)

    def norm(spec):
        spec.gamma, spec.beta = np.ones(d, np.float32), np.zeros(d, np.float32)

    def attention(spec, self_attention):
        # CTranslate2 fuses q/k/v (self-attention) or k/v (cross-attention) into one linear.
        norm(spec.layer_norm)
        if self_attention:
            linear(spec.linear[0], 3 * d, d)
        else:
            linear(spec.linear[0], d, d)
            linear(spec.linear[1], 2 * d, d)
        linear(spec.linear[-1], d, d)

    def ffn(spec):
        norm(spec.layer_norm)
        linear(spec.linear_0, 4 * d, d)
        linear(spec.linear_1, d, 4 * d)

    spec = whisper_spec.WhisperSpec(layers, heads, layers, heads)
    enc, dec = spec.encoder, spec.decoder
    enc.conv1.weight, enc.conv1.bias = rand(d, n_mels, 3), np.zeros(d, np.float32)
    enc.conv2.weight, enc.conv2.bias = rand(d, d, 3), np.zeros(d, np.float32)
    enc.position_encodings.encodings = rand(1500, d)  # 30 s of mel frames after conv2's stride 2
    norm(enc.layer_norm)
    for layer in enc.layer:
        attention(layer.self_attention, True)
        ffn(layer.ffn)
    dec.embeddings.weight = rand(len(vocabulary), d)
    dec.projection.weight = dec.embeddings.weight  # tied, as in Whisper
    dec.position_encodings.encodings = rand(448, d)  # Whisper's max target length
    norm(dec.layer_norm)
    for layer in dec.layer:
        attention(layer.self_attention, True)
        attention(layer.attention, False)
        ffn(layer.ffn)

    # What ctranslate2's TransformersWhisperConverter writes to config.json.
    token = tokenizer.token_to_id
    spec.config.lang_ids = [token(f"<|{code}|>") for code in WHISPER_LANGUAGES]
    # Control tokens the decoder must not emit mid-text (HF's list also holds symbol tokens).
    spec.config.suppress_ids = [
        token(t) for t in ("<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
                           "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>")
    ]
    spec.config.suppress_ids_begin = [token("Ġ"), token("<|endoftext|>")]  # " " and EOT, as in Whisper
    spec.config.alignment_heads = [[layers - 1, h] for h in range(heads)]  # the converter's default
    spec.register_vocabulary(vocabulary)
    spec.validate()
    spec.optimize(quantization="int8")
    dest.mkdir(parents=True)
    spec.save(str(dest))
    tokenizer.save(str(dest / "tokenizer.json"))
    if english_only:  # the tokenizer loses the same last token (<|30.00|>)
        saved = json.loads((dest / "tokenizer.json").read_text())
        saved["added_tokens"] = [t for t in saved["added_tokens"] if t["id"] < len(vocabulary)]
        (dest / "tokenizer.json").write_text(json.dumps(saved))
    (dest / "preprocessor_config.json").write_text(
        json.dumps({"feature_size": n_mels, "sampling_rate": 16000, "hop_length": 160, "chunk_length": 30,
                    "n_fft": 400})
    )
    return dest


def make_tiny_whisper_english_only(dest: Path) -> Path:
    """Like make_tiny_whisper, but English-only (vocabulary of 51864, like tiny.en)."""
    return make_tiny_whisper(dest, english_only=True)


def make_tiny_gguf_without_chat_template(dest: Path) -> Path:
    """Like make_tiny_gguf, but with no `tokenizer.chat_template` in its metadata."""
    return make_tiny_gguf(dest, chat_template=False)


def make_tiny_gguf(dest: Path, *, chat_template: bool = True) -> Path:
    """A llama-architecture GGUF: random f32 weights (2 blocks, width 64), a byte-level BPE
    tokenizer with Qwen-style ChatML special tokens and chat template (unless `chat_template`
    is false)."""
    import gguf
    from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE  # exact text llama-cpp-python maps to "chatml"
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [
        '{"name": "Marie Tremblay", "phone": "514-555-0199", "summary": "Fuite d\'eau sous l\'évier"}',
        "Bonjour, j'appelle pour un rendez-vous demain matin. Hello, my furnace stopped working.",
    ]
    # All 256 bytes in the alphabet, so any text (and any JSON the grammar allows) is encodable.
    trainer = trainers.BpeTrainer(
        vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(corpus * 10, trainer)
    tokenizer.add_special_tokens(specials)
    tokens = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
    merges = [" ".join(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]

    blocks, d, heads, ff = 2, 64, 4, 128
    rng = np.random.default_rng(0)

    def rand(*shape):  # shapes as PyTorch writes them (out, in); gguf reverses them
        return rng.normal(0, d**-0.5, shape).astype(np.float32)

    writer = gguf.GGUFWriter(str(dest), "llama")
    writer.add_context_length(2048)
    writer.add_embedding_length(d)
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(d // heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.token_to_id("<|endoftext|>"))
    writer.add_eos_token_id(tokenizer.token_to_id("<|im_end|>"))
    writer.add_pad_token_id(tokenizer.token_to_id("<|endoftext|>"))
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(CHATML_CHAT_TEMPLATE)
    writer.add_tensor("token_embd.weight", rand(len(tokens), d))
    writer.add_tensor("output_norm.weight", np.ones(d, np.float32))
    writer.add_tensor("output.weight", rand(len(tokens), d))
    for i in range(blocks):
        for name, shape in {
            "attn_norm": None, "attn_q": (d, d), "attn_k": (d, d), "attn_v": (d, d), "attn_output": (d, d),
            "ffn_norm": None, "ffn_gate": (ff, d), "ffn_up": (ff, d), "ffn_down": (d, ff),
        }.items():
            writer.add_tensor(f"blk.{i}.{name}.weight", np.ones(d, np.float32) if shape is None else rand(*shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


def tiny_models_dir() -> Path:
    """A directory holding `whisper/` (make_tiny_whisper) and `tiny.gguf` (make_tiny_gguf),
    built once per VERSION under tests/.model-cache and reused afterwards. Each build goes
    to its own temporary directory that is then renamed into place, so concurrent callers
    (pytest-xdist workers, parallel runs) never see a half-written model."""
    final = CACHE / f"v{VERSION}"
    if final.is_dir():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    try:
        make_tiny_whisper(build / "whisper")
        make_tiny_gguf(build / "tiny.gguf")
        os.rename(build, final)  # atomic; fails if another process got there first, which is fine
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return final


def install_models(config, tiny: Path) -> None:
    """Put the tiny models where `config` expects the real ones."""
    shutil.copytree(tiny / "whisper", config.models_dir / "whisper-small", dirs_exist_ok=True)
    shutil.copy(tiny / "tiny.gguf", config.models_dir / config.models.llm_file)
