"""Masking of personal data for logs, public views and anything that leaves the owning service."""
from __future__ import annotations

import hashlib
import hmac


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
