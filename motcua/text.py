"""Vietnamese text and phone numbers as every service needs them: one rule each.

`strip_diacritics` is the base of both the search key (`fold`: how people type into a search box) and
an SMS's unaccented text; `normalise_phone` is the one stored, hashed, searched and messaged form of a
mobile number."""
from __future__ import annotations

import re
import unicodedata

_PHONE = re.compile(r"0\d{9}")


def strip_diacritics(text: str) -> str:
    """'Nguyễn Thị Ánh, Đã' → 'Nguyen Thi Anh, Da' (đ/Đ → d/D; every combining mark dropped; NFC)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def fold(text: str) -> str:
    """Lower case, no diacritics, punctuation as spaces: how people type Vietnamese into a search box."""
    return "".join(c if c.isalnum() or c == "." else " " for c in strip_diacritics(text.lower()))


def normalise_phone(phone: str | None) -> str | None:
    """A Vietnamese mobile number as 0xxxxxxxxx (from +84…, 84…, with spaces, dots or dashes), or None
    if it is not one."""
    if not phone:
        return None
    digits = re.sub(r"[\s.\-()]", "", phone)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    return digits if _PHONE.fullmatch(digits) else None
