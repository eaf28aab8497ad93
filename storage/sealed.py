"""Sealed boxes: what must wait in the database unreadable to anyone who copies its files."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12
MIN_SECRET = 32  # characters of TOUCHLINE_SECRET_KEY


class Unsealable(Exception):
    """A box sealed under another key (the secret changed), or altered."""


class Seal:
    """Seals small JSON payloads with AES-GCM under a key that never enters the database.

    Every box of one kind has the same length whatever it holds (it is padded to `size`), so
    that its length cannot match it to the answer it later becomes. `context` is bound into
    the box: a box cannot be moved to another run and opened there.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a seal key has 32 bytes")
        self._aead = AESGCM(_derive(key, b"touchline sealed boxes"))
        self.key_id = _derive(key, b"touchline key id")[:8].hex()

    @classmethod
    def from_secret(cls, secret: str) -> Seal:
        return cls(hashlib.sha256(secret.encode()).digest())

    @classmethod
    def ephemeral(cls) -> Seal:
        """A key that lives as long as this process: for tests and throwaway databases."""
        return cls(secrets.token_bytes(32))

    def seal(self, payload: dict[str, Any], *, context: str, size: int) -> bytes:
        plain = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        if len(plain) > size:
            raise ValueError(f"a sealed payload of {len(plain)} bytes does not fit in {size}")
        # JSON never holds a raw NUL, so the padding can be cut off again without a length.
        plain += b"\0" * (size - len(plain))
        nonce = secrets.token_bytes(NONCE)
        return nonce + self._aead.encrypt(nonce, plain, context.encode())

    def open(self, box: bytes, *, context: str) -> dict[str, Any]:
        try:
            plain = self._aead.decrypt(box[:NONCE], box[NONCE:], context.encode())
        except InvalidTag:
            raise Unsealable("sealed under another key, or altered") from None
        found = json.loads(plain.rstrip(b"\0"))
        if not isinstance(found, dict):
            raise Unsealable("not a sealed payload")
        return found


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()


def key_file(path: Path) -> bytes:
    """The key kept in `path` (created once, readable by its owner only), for an installation
    that sets no secret: the file sits beside the database, never inside it."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key.hex() + "\n")
    try:
        os.link(draft, path)  # whole or not at all, and only once however many start at once
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    finally:
        draft.unlink()
    return key
