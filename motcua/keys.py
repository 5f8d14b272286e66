"""Khoá bí mật: one key per purpose, each read from its own setting, and the production rules for them.

A development or demo run needs no key set: each purpose gets a value derived from its setting's name,
public by construction (it is in this file), so that separate processes of one machine agree. In
production (`MOTCUA_ENV=production`) a process refuses to start unless every key it uses

* is set,
* carries at least 256 bits (32 bytes, given as base64, base64url or hex: `motcua keys new` prints one),
* and appears nowhere in the repository (compose files, deploy/, docs/, tests/: anything published).

Keys are separate per purpose so that one leaking (a throttle key read off a gateway) does not forge
another (tracking keys, tokens); docs/security.md says how to rotate each.

Access tokens are signed with an Ed25519 key pair instead (`pem_setting`): the private key only in the
gateway (`MOTCUA_TOKEN_SIGNING_KEY`) and the operators' `motcua tokens system`, the public key in every
process that verifies tokens (`MOTCUA_TOKEN_VERIFY_KEY`). Development uses the pair committed under
deploy/dev/, which production refuses as published.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import secrets
from pathlib import Path

from motcua.config import ROOT, env, is_production

STRONG_BYTES = 32  # 256 bits
# Published files a secret must not be copied from (a value found in any of them is public).
PUBLISHED = ("compose.yaml", "compose.override.yaml", "README.md", "Makefile", "deploy", "docs", "tests",
             "chaos", "bench", ".ci", "motcua", "services", "workers")
_SCANNED_SUFFIXES = {".yaml", ".yml", ".md", ".py", ".sql", ".json", ".txt", ".env", ".pem", ".toml", ".ini",
                     ".sh", ""}
_SCANNED_MAX_BYTES = 2_000_000


def development_value(name: str) -> str:
    """The public stand-in for `name` outside production (derived, so every process agrees)."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"motcua-development:{name}".encode()).digest()).decode()


def key_setting(name: str) -> bytes:
    """The key of setting `name` as bytes (what HMACs and ciphers take); see the module's rules."""
    value = env(name)
    if value is None:
        if is_production():
            raise SystemExit(f"{name} must be set when MOTCUA_ENV=production: generate one with "
                             "`motcua keys new` and give it to this service only")
        value = development_value(name)
    elif is_production():
        refuse_weak_or_published(name, value)
    return value.encode()


TOKEN_SIGNING_KEY = "MOTCUA_TOKEN_SIGNING_KEY"
# The postal carrier signs its callbacks with it (intake checks them; the simulator signs with it).
POSTAL_CALLBACK_SECRET = "POSTAL_CALLBACK_SECRET"
TOKEN_VERIFY_KEY = "MOTCUA_TOKEN_VERIFY_KEY"
# The development key pair: published on purpose (every checkout's processes agree), refused in production.
DEVELOPMENT_PEMS = {TOKEN_SIGNING_KEY: ROOT / "deploy" / "dev" / "token-signing-key.pem",
                    TOKEN_VERIFY_KEY: ROOT / "deploy" / "dev" / "token-verify-key.pem"}


def pem_setting(name: str) -> str:
    """The PEM text of setting `name`, given as the text itself or as the path of a file holding it;
    outside production, deploy/dev's published pair when unset. Production refuses it unset or
    published: the development pair's private key is in the repository, so its public key would
    accept tokens anyone can sign."""
    value = env(name)
    if value is None:
        if is_production():
            raise SystemExit(f"{name} must be set when MOTCUA_ENV=production: make a key pair with "
                             "`motcua keys token-pair`")
        return DEVELOPMENT_PEMS[name].read_text()
    if value.lstrip().startswith("-----BEGIN"):
        text = value
    else:
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise SystemExit(f"{name} is neither a PEM text nor a readable file ({exc.strerror})") from None
    if is_production() and is_published(text):
        raise SystemExit(f"{name} is a key published in the repository (anyone can sign with its pair): make "
                         "a private pair with `motcua keys token-pair`")
    return text


def refuse_weak_or_published(name: str, value: str) -> None:
    """Stop the process (naming the setting, never the value) if `value` is not a production secret."""
    if not is_strong(value):
        raise SystemExit(f"{name} is weaker than 256 random bits: generate one with `motcua keys new`")
    if is_published(value) or value.strip() == development_value(name):
        raise SystemExit(f"{name} is a value published in the repository (anyone can read it): generate a "
                         "private one with `motcua keys new`")


def is_strong(value: str) -> bool:
    """At least 32 bytes once decoded, and not a pattern (few distinct bytes, as 'aaaa…' or '0101…')."""
    raw = decoded(value.strip())
    return raw is not None and len(raw) >= STRONG_BYTES and len(set(raw)) >= STRONG_BYTES // 2


def decoded(value: str) -> bytes | None:
    """The bytes a key's text stands for: hex, base64url or base64 (with or without padding)."""
    if len(value) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value):
        return bytes.fromhex(value)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            return decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            continue
    return None


def is_published(value: str) -> bool:
    needle = value.strip()
    return any(needle in text for text in _published_texts()) or needle in _known_public_values()


def _known_public_values() -> set[str]:
    """Secrets published before this module: the old shared secret's development value and compose's."""
    return {"motcua-development-secret-change-me", "change-me-in-production"}


@functools.cache
def _published_texts() -> tuple[str, ...]:
    """The text of every published file of the checkout this process runs from (read once)."""
    texts = []
    for top in PUBLISHED:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for file in files:
            if (file.is_file() and file.suffix in _SCANNED_SUFFIXES and ".venv" not in file.parts
                    and "__pycache__" not in file.parts and file.stat().st_size <= _SCANNED_MAX_BYTES):
                try:
                    texts.append(file.read_text(encoding="utf-8", errors="ignore"))
                except OSError:
                    continue
    return tuple(texts)


def new_token_pair() -> tuple[str, str]:
    """A fresh Ed25519 pair for tokens as PEM texts (private, public): `motcua keys token-pair`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    return (private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
            private.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo).decode())


def new_key() -> str:
    """A fresh 256-bit key as base64url (what `motcua keys new` prints)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(STRONG_BYTES)).decode().rstrip("=")


def replacement_setting(name: str) -> bytes:
    """The new key of a rotation (`<NAME>_NEW`, given to the operator's command that moves to it): always
    set explicitly, and held to production's rules like any key."""
    value = env(name)
    if value is None:
        raise SystemExit(f"{name} must be set to the new key (generate one with `motcua keys new`)")
    if is_production():
        refuse_weak_or_published(name, value)
    return value.encode()


MIN_PASSWORD_CHARACTERS = 16


def refuse_published_password(setting: str, url: str) -> None:
    """Stop a production process whose broker or database URL (`setting`) carries a password that is
    published in the repository (compose's demo passwords are) or shorter than 16 characters. The
    refusal names the setting, never the URL (it holds the password). URLs without a password (peer or
    certificate authentication) pass."""
    from urllib.parse import unquote, urlsplit

    password = urlsplit(url).password
    if not is_production() or password is None:
        return
    password = unquote(password)
    if len(password) < MIN_PASSWORD_CHARACTERS:
        raise SystemExit(f"{setting}'s password is shorter than {MIN_PASSWORD_CHARACTERS} characters: set a "
                         "long private one (`motcua keys new` makes one)")
    if is_published(password):
        raise SystemExit(f"{setting}'s password is published in the repository (anyone can read it): set a "
                         "private one for this deployment")

