"""SMS text: Vietnamese without diacritics in the GSM-7 alphabet, its segment count, phone numbers.

A Vietnamese SMS with diacritics needs UCS-2: 70 characters a segment instead of 160. Citizens'
SMS are therefore sent unaccented ("Ho so ... da duoc tiep nhan"), the usual practice of carriers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from motcua.text import strip_diacritics

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # two characters each (escape + char)
SINGLE, CONCATENATED = 160, 153  # GSM-7 characters in one SMS / in each part of a long one
UCS2_SINGLE, UCS2_CONCATENATED = 70, 67
_PUNCTUATION = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-",
                              "…": "...", "\u00a0": " ", "\t": " "})


def unaccent(text: str) -> str:
    """'Nguyễn Thị Ánh, đã tiếp nhận' → 'Nguyen Thi Anh, da tiep nhan'; anything else outside
    GSM-7 becomes '?', so the result always travels as GSM-7."""
    plain = strip_diacritics(text.translate(_PUNCTUATION))
    return "".join(c if c in GSM7_BASIC or c in GSM7_EXTENDED else "?" for c in plain)


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int     # septets (extended characters count 2) or UTF-16 code units
    segments: int


def measure(text: str) -> SmsLength:
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, part, encoding = SINGLE, CONCATENATED, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = UCS2_SINGLE, UCS2_CONCATENATED, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / part)
    return SmsLength(encoding, units, segments)


def fit(text: str, max_segments: int = 1) -> str:
    """`text` cut (with '...') to at most `max_segments` GSM-7 segments."""
    limit = SINGLE if max_segments == 1 else CONCATENATED * max_segments
    if measure(text).units <= limit:
        return text
    text = text[:limit]  # every GSM-7 character is at least one unit: nothing shorter is lost
    while measure(text + "...").units > limit:
        text = text[:-1]
    return text.rstrip() + "..."


def mask_phone(phone: str) -> str:
    """0912345678 → 091****678: recognisable by its owner, useless to anyone else."""
    return f"{phone[:3]}****{phone[-3:]}" if len(phone) >= 7 else "***"
