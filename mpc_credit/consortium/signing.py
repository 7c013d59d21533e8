"""Ed25519 signing keys of the consortium's parties, and signed JSON messages.

A message is a JSON object; its signature covers the canonical encoding (sorted keys,
no spaces, ASCII) of every field except `sig`, prefixed by a domain-separation label
so a signature made for one kind of message can never be replayed as another kind.
Public keys travel as base64 of the 32 raw bytes; private keys stay in PKCS#8 PEM files
of mode 0600 (see `mpc_credit.consortium.pki.write_private`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpc_credit.errors import UsageError

SIG_FIELD = "sig"


def new_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def write_signing_key(path: str | Path, key: Ed25519PrivateKey) -> None:
    """Write `key` as unencrypted PKCS#8 PEM, mode 0600 from creation on."""
    from mpc_credit.consortium.pki import key_pem, write_private

    write_private(Path(path), key_pem(key))


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key; refuse a file others can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: signing key not found") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read signing key: {exc.strerror}") from None
    if mode & 0o077:
        raise UsageError(f"{path}: signing key is readable by others (mode {mode:o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: not an Ed25519 key")
    return key


def public_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64-encoded (as the consortium file lists it)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_from_b64(text: str) -> Ed25519PublicKey:
    """Inverse of `public_b64`."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"invalid Ed25519 public key {text!r}: {exc}") from None


def canonical(label: str, message: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: label, newline, canonical JSON without `sig`."""
    body = {k: v for k, v in message.items() if k != SIG_FIELD}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return label.encode() + b"\n" + blob.encode()


def sign(label: str, message: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of `message` with its signature in `sig`."""
    out = {k: v for k, v in message.items() if k != SIG_FIELD}
    out[SIG_FIELD] = base64.b64encode(key.sign(canonical(label, out))).decode()
    return out


def verify(label: str, message: Mapping[str, Any], public: Ed25519PublicKey) -> bool:
    """True iff `message[sig]` is `public`'s signature of the message under `label`."""
    sig = message.get(SIG_FIELD)
    if not isinstance(sig, str):
        return False
    try:
        public.verify(base64.b64decode(sig, validate=True), canonical(label, message))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
