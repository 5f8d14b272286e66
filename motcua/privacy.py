"""Masking of personal data for logs, public views and anything that leaves the owning service."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet


def mask_name(full_name: str) -> str:
    """'Nguyễn Văn An' → 'Nguyễn V. A.': family name kept, the rest initials (public tracking)."""
    parts = full_name.split()
    if len(parts) <= 1:
        return (parts[0][0] + "***") if parts else ""
    return " ".join([parts[0], *(p[0] + "." for p in parts[1:])])


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def tracking_key(secret: str, code: str, phone_last4: str) -> str:
    """Keyed hash of (dossier code, last 4 phone digits): lets reporting check a tracking key
    without ever holding the phone number."""
    return hmac.new(secret.encode(), f"{code}:{phone_last4}".encode(), hashlib.sha256).hexdigest()


# -- parked messages: personal fields sealed with a key of the consuming service ------------------------

# Fields of an event's data that carry personal data (the applicant's contact, their form, identity
# numbers, addresses, free-text comments). Their values never appear in a parked message in the clear.
PERSONAL_FIELDS = frozenset({"contact", "form", "full_name", "email", "phone", "id_number", "address",
                             "comment"})
SEALED = "$sealed"  # {"$sealed": "<Fernet token>"} stands for a sealed value


def sealing_key(material: str) -> bytes:
    """A Fernet key derived from any secret string (a service's dead-letter key)."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"motcua-dead-letters:" + material.encode()).digest())


def seal(key: bytes, plain: bytes) -> str:
    return Fernet(key).encrypt(plain).decode()


def unseal(key: bytes, token: str | bytes) -> bytes:
    """The sealed bytes; raises cryptography.fernet.InvalidToken for another key's (or a forged) token."""
    return Fernet(key).decrypt(token)


def seal_personal_fields(value, key: bytes):
    """A copy of `value` (an event body) with each personal field's value sealed, at any depth."""
    if isinstance(value, dict):
        return {k: ({SEALED: seal(key, json.dumps(v).encode())}
                    if k in PERSONAL_FIELDS and v is not None and not _is_sealed(v)
                    else seal_personal_fields(v, key))
                for k, v in value.items()}
    if isinstance(value, list):
        return [seal_personal_fields(v, key) for v in value]
    return value


def unseal_personal_fields(value, key: bytes):
    """The inverse of `seal_personal_fields`."""
    if _is_sealed(value):
        return json.loads(unseal(key, value[SEALED]))
    if isinstance(value, dict):
        return {k: unseal_personal_fields(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [unseal_personal_fields(v, key) for v in value]
    return value


def redact_personal_fields(value):
    """A copy of `value` fit to show an operator: sealed values and personal fields read '<personal>'."""
    if isinstance(value, dict):
        return {k: ("<personal>" if (k in PERSONAL_FIELDS and v is not None) or _is_sealed(v)
                    else redact_personal_fields(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_personal_fields(v) for v in value]
    return value


def _is_sealed(value) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED}
