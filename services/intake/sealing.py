"""Mã hoá khi lưu trữ: applicants' ID numbers and phones encrypted at rest, by envelope encryption.

A data key (AES-256-GCM) encrypts the values; `data_keys` stores it wrapped (encrypted) under the
key-encryption key (KEK) of the environment, `INTAKE_DATA_KEY`, which never reaches the database. So a
copy of the database alone (a backup, a replica, an insider's SELECT) reads no ID number and no phone.
Search never decrypts: it matches the keyed lookup hashes (the blind index, `search.lookup_hash`).

Each value is bound to its column and its dossier's code (associated data): a value copied onto another
row or column does not open. Stored as `<data key id>.<base64url of nonce, ciphertext and tag>`.

The command results intake keeps for idempotent repeats (views, with the same personal data) are stored
with their personal fields sealed under a key derived from the data key (`results_key`).

Rotating the KEK re-wraps the data keys (`rewrap`, `motcua data-keys rewrap`) and leaves every row as it
is; docs/intake.md says how.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import weakref
from datetime import datetime, timezone

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from motcua.keys import key_setting, replacement_setting
from motcua.sql import read_rows
from services.intake.models import data_keys

SETTING = "INTAKE_DATA_KEY"
NEW_SETTING = "INTAKE_DATA_KEY_NEW"  # the KEK `motcua data-keys rewrap` moves the data keys to
SEALED_COLUMNS = ("applicant_id_number", "applicant_phone")
_NONCE_BYTES = 12
_WRAPPED = b"motcua-intake-data-key"  # associated data of a wrapped data key


class WrongKey(RuntimeError):
    """The KEK given is not the one the data keys are wrapped with."""


def key_encryption_key(setting: bytes) -> bytes:
    """The AES-256 KEK a setting's text stands for (any length of text: it is hashed to 256 bits)."""
    return hashlib.sha256(b"motcua-intake-kek:" + setting).digest()


@functools.cache
def environment_kek() -> bytes:
    """This environment's KEK (`INTAKE_DATA_KEY`; production refuses a missing, weak or published one)."""
    return key_encryption_key(key_setting(SETTING))


def new_environment_kek() -> bytes:
    """The KEK of `INTAKE_DATA_KEY_NEW` (the rotation's new key)."""
    return key_encryption_key(replacement_setting(NEW_SETTING))


def kek_id(kek: bytes) -> str:
    """A fingerprint naming which KEK wrapped a data key (not the key: it cannot be recovered from it)."""
    return hmac.new(kek, b"motcua-intake-kek-id", hashlib.sha256).hexdigest()[:16]


def _encrypt(key: bytes, plain: bytes, context: bytes) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    return base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, plain, context)).decode()


def _decrypt(key: bytes, text: str, context: bytes) -> bytes:
    raw = base64.urlsafe_b64decode(text)
    return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context)


def wrap(kek: bytes, data_key: bytes) -> dict:
    """A data key as its `data_keys` row's columns (wrapped under `kek`)."""
    return {"wrapped": _encrypt(kek, data_key, _WRAPPED), "kek_id": kek_id(kek)}


def unwrap(kek: bytes, wrapped: str, wrapped_by: str) -> bytes:
    if wrapped_by != kek_id(kek):
        raise WrongKey(f"{SETTING} is not the key intake's data keys are wrapped with (rotated without "
                       "`motcua data-keys rewrap`? see docs/intake.md)")
    return _decrypt(kek, wrapped, _WRAPPED)


def new_data_key(connection: Connection, table: Table, kek: bytes) -> tuple[int, bytes]:
    """A fresh data key stored wrapped under `kek` in `table` (intake's migrations make the first)."""
    key = AESGCM.generate_key(bit_length=256)
    key_id = connection.execute(insert(table).values(**wrap(kek, key), created_at=datetime.now(timezone.utc))
                                .returning(table.c.id)).scalar_one()
    return key_id, key


def _context(column: str, code: str) -> bytes:
    return f"dossiers.{column}:{code}".encode()


def seal(key_id: int, data_key: bytes, column: str, code: str, plain: str) -> str:
    """`plain` (a value of `column` of dossier `code`) encrypted under the data key."""
    return f"{key_id}.{_encrypt(data_key, plain.encode(), _context(column, code))}"


def open_sealed(data_keys: dict[int, bytes], column: str, code: str, stored: str) -> str:
    """The value `seal` encrypted; InvalidTag if it was altered or moved to another row or column."""
    key_id, _, text = stored.partition(".")
    return _decrypt(data_keys[int(key_id)], text, _context(column, code)).decode()


def rewrap(connection: Connection, table: Table, old_kek: bytes, new_kek: bytes) -> int:
    """Every data key of `table` re-wrapped from `old_kek` to `new_kek`, in the caller's transaction;
    how many were. Keys already under `new_kek` are left (a repeated run changes nothing)."""
    rows = connection.execute(select(table).order_by(table.c.id).with_for_update()).all()
    changed = 0
    for row in rows:
        if row.kek_id == kek_id(new_kek):
            continue
        key = unwrap(old_kek, row.wrapped, row.kek_id)
        connection.execute(update(table).where(table.c.id == row.id).values(**wrap(new_kek, key)))
        changed += 1
    return changed


class DataKeys:
    """The data keys of a database, unwrapped with the KEK once per engine and kept: they never change
    (rotation re-wraps them), and reading them per unit of work would cost every request a statement."""

    def __init__(self, kek: bytes, table: Table):
        self.kek = kek
        self.table = table
        self._by_engine: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def keys(self, session: Session) -> dict[int, bytes]:
        engine = session.get_bind()
        keys = self._by_engine.get(engine)
        if keys is None:
            rows = read_rows(session, select(self.table), {})
            if not rows:
                raise RuntimeError("intake's database holds no data key: run its migrations first "
                                   "(python -m motcua.migrate upgrade intake)")
            keys = self._by_engine[engine] = {row.id: unwrap(self.kek, row.wrapped, row.kek_id) for row in rows}
        return keys

    def sealed(self, session: Session, code: str, values: dict) -> dict:
        """`values` (a dossier's columns) with its personal columns encrypted under the newest data key."""
        if not any(column in values for column in SEALED_COLUMNS):
            return values
        keys = self.keys(session)
        key_id = max(keys)
        return {column: (seal(key_id, keys[key_id], column, code, value)
                         if column in SEALED_COLUMNS and value is not None else value)
                for column, value in values.items()}

    def results_key(self, session: Session) -> bytes:
        """The Fernet key of the command results intake stores (their personal fields sealed by
        `privacy.seal_personal_fields`), derived from the first data key: never replaced, so every stored
        result opens (and a KEK rotation re-wraps it with the others)."""
        keys = self.keys(session)
        return base64.urlsafe_b64encode(hashlib.sha256(b"motcua-intake-results:" + keys[min(keys)]).digest())

    def opened(self, session: Session, values: dict) -> None:
        """Decrypt, in place, the personal columns of a dossier's row (`values`, with its code)."""
        keys = self.keys(session)
        for column in SEALED_COLUMNS:
            if values.get(column) is not None:
                try:
                    values[column] = open_sealed(keys, column, values["code"], values[column])
                except InvalidTag:
                    raise RuntimeError(f"dossier {values['code']}: {column} does not open (altered, or "
                                       "copied from another row)") from None


@functools.cache
def environment_data_keys() -> DataKeys:
    """The data keys of intake's database under this environment's KEK."""
    return DataKeys(environment_kek(), data_keys)
