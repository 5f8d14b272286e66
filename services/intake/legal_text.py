"""Processing time and fee as the national procedure database (csdl.dichvucong.gov.vn) writes them,
read into the catalogue's fields (procedures.yaml): "05 ngày làm việc", "Trong ngày", "Không quá 10
ngày kể từ ngày nhận đủ hồ sơ hợp lệ", "50.000 đồng/bản", "Không". A text these rules do not read
raises Unreadable with the reason; nothing is guessed (docs/adopting.md lists the phrasings read).

Rules that are law, not guesses: "ngày" alone is a calendar day (ngày làm việc says working day);
"trong ngày" is 0 working days, due at the close of the day of receipt; hours are working hours.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from motcua.text import strip_diacritics

CHANNEL_WORDS = {"truc tiep": "counter", "truc tuyen": "online", "qua mang": "online",
                 "dich vu buu chinh": "postal", "buu chinh": "postal"}
_CHANNEL = re.compile(r"(truc tiep|truc tuyen|qua mang|dich vu buu chinh|buu chinh)\s*:")
# the clause that makes a second figure conditional: the first figure is the procedure's time, the
# other is a case the officer handles (and the report shows it, so the reader sees what was set aside)
_CONDITIONAL = re.compile(r"\b(truong hop|neu|doi voi truong hop)\b")


class Unreadable(ValueError):
    """A text the import does not read: a person fixes the row."""


@dataclass(frozen=True)
class Time:
    value: Decimal
    unit: str  # working_days | calendar_days | working_hours
    cutoff: str | None = None  # "15:00": received after it, the result the next working day

    def view(self) -> dict:
        value = int(self.value) if self.value == self.value.to_integral_value() else float(self.value)
        return {"value": value, "unit": self.unit}


@dataclass(frozen=True)
class Fee:
    amount: int
    unit: str = "dossier"  # dossier | copy | page
    tiers: tuple[tuple[int, int | None], ...] = ()  # (per_page, pages) in order; pages None on the last
    cap: int | None = None


@dataclass
class Read:
    """What a text said: the default, the per-channel overrides, and what was set aside (told, not hidden)."""

    default: object
    channels: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _channel_parts(text: str) -> list[tuple[str | None, str]]:
    """'Trực tiếp: 05 ngày; Trực tuyến: 03 ngày' → [('counter', '05 ngay'), ('online', '03 ngay')]."""
    folded = _fold_keep(text)
    marks = list(_CHANNEL.finditer(folded))
    if not marks:
        return [(None, folded)]
    parts = []
    if folded[:marks[0].start()].strip(" ;,.-"):
        parts.append((None, folded[:marks[0].start()]))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(folded)
        parts.append((CHANNEL_WORDS[mark.group(1)], folded[mark.end():end]))
    return parts


def _fold_keep(text: str) -> str:
    """Folded (no diacritics, lower case) but keeping the punctuation that separates clauses and the
    dots and commas inside amounts."""
    return re.sub(r"\s+", " ", strip_diacritics(str(text).lower())).strip()


def _by_channel(text, read_one) -> Read:
    if text is None or not str(text).strip():
        raise Unreadable("empty")
    parts = _channel_parts(str(text))
    result = None
    for channel, part in parts:
        value, notes = read_one(part)
        if channel is None:
            if result is not None:
                raise Unreadable("two figures without a channel")
            result = Read(value, notes=notes)
        else:
            if result is None:
                result = Read(value)
            elif channel in result.channels:
                raise Unreadable(f"channel {channel} given twice")
            result.channels[channel] = value
            result.notes.extend(notes)
    if parts[0][0] is not None:
        # no default stated: the counter's terms are the default, the others override it
        result.default = result.channels.pop("counter", result.default)
    result.channels = {c: v for c, v in result.channels.items() if v != result.default}
    return result


# ------------------------------------------------------------------------------------- time

_NUMBER = r"(?<![\d.,])(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(_NUMBER + r"\s*(ngay lam viec|ngay|gio lam viec|gio|tuan|thang)\b")
_SAME_DAY = re.compile(r"\b(ngay )?trong (ngay|ngay lam viec)\b(?! ?\d)")
_CUTOFF = re.compile(r"sau (\d{1,2})\s*(?:gio|h)\s*(\d{2})?")


def parse_time(text) -> Read:
    """'05 ngày làm việc' → 5 working days; per channel when the text names the channels."""
    return _by_channel(text, _one_time)


def _one_time(text: str) -> tuple[Time, list[str]]:
    main, _, rest = _split_conditional(text)
    cutoff = _CUTOFF.search(text)
    durations = _DURATION.findall(_CUTOFF.sub(" ", main))  # "sau 15 giờ" is a time of day, not a duration
    if _SAME_DAY.search(main) and not durations:
        notes = [f"set aside: {rest.strip(' ;,.')!r}"] if rest and not cutoff and _DURATION.search(rest) else []
        hour = int(cutoff.group(1)) if cutoff else None
        if hour is not None and not 7 <= hour <= 17:
            raise Unreadable(f"cut-off hour {hour} outside office hours")
        return Time(Decimal(0), "working_days",
                    f"{hour:02d}:{cutoff.group(2) or '00'}" if cutoff else None), notes
    notes = [f"set aside: {rest.strip(' ;,.')!r}"] if rest and _DURATION.search(rest) else []
    if not durations:
        raise Unreadable("no duration (ngày làm việc, ngày, giờ, trong ngày)")
    if len({d for d in durations}) > 1:
        raise Unreadable(f"{len(durations)} durations in one clause: {', '.join(' '.join(d) for d in durations)}")
    number, word = durations[0]
    value = Decimal(number.replace(",", "."))
    if word in ("tuan", "thang"):
        raise Unreadable(f"a time in {'weeks' if word == 'tuan' else 'months'}: the catalogue counts days")
    unit = {"ngay lam viec": "working_days", "ngay": "calendar_days"}.get(word, "working_hours")
    if unit == "calendar_days" and value != value.to_integral_value():
        raise Unreadable("half a calendar day")
    if unit == "working_days" and (value * 2) != (value * 2).to_integral_value():
        raise Unreadable("working days in steps of 0.5")
    return Time(value, unit), notes


def _split_conditional(text: str) -> tuple[str, str, str]:
    found = _CONDITIONAL.search(text)
    if not found or found.start() == 0:
        return text, "", ""
    return text[:found.start()], found.group(0), text[found.start():]


# -------------------------------------------------------------------------------------- fee

# "Không", "Không có", "Miễn lệ phí", "Miễn phí, lệ phí" — with no amount anywhere in the text
_NOTHING = re.compile(r"^(khong|mien)\b")
_BARE_AMOUNT = re.compile(r"\d{1,3}(?:[.,\s]\d{3})+|\d+")
_AMOUNT = re.compile(r"(\d{1,3}(?:[.,\s]\d{3})+|\d+)\s*(trieu|nghin|ngan)?\s*(?:dong|vnd|vnđ|d\b|đ)")
_PER = re.compile(r"^\s*(?:/|mot|cho moi|moi)\s*(ban sao|ban chinh|ban|trang|ho so|lan|giay|trich luc|bo)")
_UNIT_WORDS = {"ban sao": "copy", "ban chinh": "copy", "ban": "copy", "trich luc": "copy", "giay": "copy",
               "trang": "page", "ho so": "dossier", "lan": "dossier", "bo": "dossier"}
# phí chứng thực bản sao (Circular 226/2016/TT-BTC): pages one and two, the third on, a cap a copy
_TIERED = re.compile(r"trang thu (nhat|hai|1|2).*?(?:tu trang thu (ba|3)|trang thu (ba|3) tro (len|di))")
_CAP = re.compile(r"(?:toi da|khong qua|toi da khong qua)[^\d]*")


def parse_fee(text) -> Read:
    """'8.000 đồng/bản' → 8000 a copy; 'Không' → 0; the certification tiers; per channel when named."""
    return _by_channel(text, _one_fee)


def _amounts(text: str) -> list[tuple[int, str, int]]:
    """Each amount with the unit it is priced per ('dossier' when none) and where it ends."""
    found = []
    for match in _AMOUNT.finditer(text):
        digits = re.sub(r"[.,\s]", "", match.group(1))
        scale = {"trieu": 1_000_000, "nghin": 1_000, "ngan": 1_000}.get(match.group(2), 1)
        per = _PER.match(text[match.end():])
        found.append((int(digits) * scale, _UNIT_WORDS[per.group(1)] if per else None, match.end()))
    return found


def _one_fee(text: str) -> tuple[Fee, list[str]]:
    text = text.strip(" ;,.")
    if _BARE_AMOUNT.fullmatch(text):  # a number alone: a spreadsheet's fee column in đồng
        return Fee(int(re.sub(r"[.,\s]", "", text))), []
    amounts = _amounts(text)
    if not amounts and _NOTHING.match(text):
        return Fee(0), []
    if not amounts:
        raise Unreadable("no amount in đồng and not 'Không'")
    if _TIERED.search(text):
        return _tiered(text, amounts), []
    if _CAP.search(text):
        raise Unreadable("a ceiling (tối đa, không quá), not a price")
    if len(amounts) > 1:
        raise Unreadable(f"{len(amounts)} amounts ({', '.join(str(a) for a, *_ in amounts)}): which one applies "
                         "is for a person to say (or write them per channel: 'Trực tiếp: …; Trực tuyến: …')")
    amount, unit, _ = amounts[0]
    return Fee(amount, unit or "dossier"), []


def _tiered(text: str, amounts) -> Fee:
    """'2.000 đồng/trang đối với trang thứ nhất, trang thứ hai; từ trang thứ ba trở lên 1.000 đồng/trang,
    tối đa không quá 200.000 đồng/bản' → tiers (2000, 2 pages), (1000, every page after), cap 200000."""
    cap_at = _CAP.search(text)
    prices = [a for a in amounts if not cap_at or a[2] <= cap_at.end()]
    caps = [a for a in amounts if cap_at and a[2] > cap_at.end()]
    if len(prices) != 2 or any(unit != "page" for _, unit, _ in prices) or len(caps) > 1:
        raise Unreadable("a fee by pages needs two prices per page (trang thứ nhất, hai; từ trang thứ ba) "
                         "and at most one cap")
    (first, _, _), (then, _, _) = prices
    return Fee(first, "page", ((first, 2), (then, None)), caps[0][0] if caps else None)
