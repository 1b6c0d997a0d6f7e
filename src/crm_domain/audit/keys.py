"""The Ed25519 key pair that signs audit exports: generate it once, keep the private half
safe, hand the public half to the auditors.

Keys are PEM files (PKCS #8 private, SubjectPublicKeyInfo public), as ``openssl genpkey
-algorithm ed25519`` writes them, so either tool can make the pair.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from crm_domain.errors import ConfigurationError


def generate_key_pair(private_path: Path, public_path: Path) -> None:
    """Write a new Ed25519 private key (readable by its owner only) and its public key;
    refuse to overwrite an existing private key."""
    if private_path.exists():
        raise ConfigurationError(f"{private_path} exists: not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path`` (PEM); a :class:`ConfigurationError` if it is
    missing or not such a key."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot load the signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 private key")
    return key
