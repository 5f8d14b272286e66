"""A province's catalogue from the spreadsheets the national procedure database publishes
(csdl.dichvucong.gov.vn: "Mã thủ tục", "Tên thủ tục", "Lĩnh vực", "Cấp thực hiện", "Cơ quan thực hiện",
"Thời hạn giải quyết", "Phí, lệ phí", "Thành phần hồ sơ", "Mức độ") and its agency list (e-ID codes of
Decision 20/2020/QĐ-TTg, parent, level, communes served), read into procedures.yaml and agencies.yaml.

`plan()` reads the sheets against the catalogue in force and says what would change: procedures new,
changed (field by field) and retired, agencies likewise, and every cell it could not read with its
row; `apply()` writes the change as new versions effective from a date (a dossier keeps the version it
was received under), after the whole new catalogue has loaded and validated. Nothing is guessed: an
unreadable row is never applied, and while one is left `apply()` refuses unless told to keep those
procedures as they are (docs/adopting.md)."""
from __future__ import annotations

import base64
import binascii
import csv
import io
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import yaml

from motcua.catalog import AGENCY_CODE, CatalogError
from motcua.config import ROOT
from motcua.errors import ValidationFailed
from motcua.text import fold
from services.intake.catalog import Catalog
from services.intake.legal_text import Unreadable, parse_fee, parse_time

PROCEDURE_CODE = re.compile(r"^\d\.\d{6}$")

# Column headings as the national database and the provinces' exports word them (folded: no
# diacritics, lower case), first the catalogue's own field, then every heading that means it.
PROCEDURE_COLUMNS = {
    "code": ("ma thu tuc", "ma tthc", "ma so thu tuc", "ma so", "ma"),
    "name": ("ten thu tuc", "ten tthc", "ten thu tuc hanh chinh", "ten"),
    "field": ("linh vuc", "ten linh vuc", "linh vuc thuc hien"),
    "field_code": ("ma linh vuc",),
    "level": ("cap thuc hien", "cap", "cap giai quyet"),
    "agency": ("co quan thuc hien", "co quan giai quyet", "co quan tiep nhan", "ma co quan thuc hien"),
    "time": ("thoi han giai quyet", "thoi gian giai quyet", "thoi han"),
    "fee": ("phi, le phi", "phi le phi", "le phi", "phi"),
    "documents": ("thanh phan ho so", "ho so gom", "thanh phan, so luong ho so"),
    "online_level": ("muc do", "muc do dvc", "muc do dich vu cong", "dich vu cong truc tuyen",
                     "muc do dvctt", "dvc truc tuyen"),
}
AGENCY_COLUMNS = {
    "code": ("ma dinh danh", "ma co quan", "ma don vi", "ma"),
    "name": ("ten co quan", "ten don vi", "ten"),
    "parent": ("ma co quan cap tren", "co quan cap tren", "co quan chu quan", "don vi cap tren", "ma don vi cha"),
    "level": ("cap", "cap hanh chinh", "loai co quan", "cap co quan"),
    "serves": ("dia ban phuc vu", "xa phuong phuc vu", "phuc vu cac xa", "cac xa phuc vu"),
}
# The levels a sheet writes in words, for the catalogue's levels (agencies.yaml `levels`).
LEVEL_WORDS = {
    "province": ("tinh", "cap tinh", "thanh pho", "ubnd tinh"),
    "department": ("so", "cap so", "so, ban, nganh", "so ban nganh", "ban", "nganh"),
    "unit": ("don vi", "don vi truc thuoc", "chi cuc", "phong", "co quan nganh doc", "nganh doc", "doi"),
    "commune": ("xa", "cap xa", "phuong", "xa, phuong", "xa, phuong, dac khu", "dac khu", "thi tran"),
}
# A procedure's "Cấp thực hiện" against its agency's level.
PROCEDURE_LEVELS = {"cap tinh": {"province", "department", "unit"}, "tinh": {"province", "department", "unit"},
                    "cap xa": {"commune"}, "xa": {"commune"}}
ONLINE_WORDS = {"toan trinh": "full", "muc do 4": "full", "4": "full",
                "mot phan": "partial", "muc do 3": "partial", "3": "partial"}
# What a version of a procedure says, compared on re-import (the rest is carried over).
COMPARED = ("name", "field", "level", "agency_code", "processing_time", "cutoff", "fee", "fee_unit",
            "fee_tiers", "fee_cap", "channels", "online_level", "documents")


@dataclass(frozen=True)
class Problem:
    """A cell the import could not read: the sheet, the row (as the spreadsheet numbers it), the column,
    what it says and why it was not read."""

    sheet: str
    row: int
    column: str
    text: str
    reason: str

    def __str__(self):
        return f"{self.sheet}:{self.row}: {self.column}: {self.reason} — {self.text!r}"


@dataclass
class Change:
    code: str
    name: str
    fields: dict = field(default_factory=dict)  # field -> (before, after), for a changed one

    def view(self) -> dict:
        return {"code": self.code, "name": self.name,
                "fields": {k: {"before": _plain(b), "after": _plain(a)} for k, (b, a) in self.fields.items()}}


def _plain(value):
    """A compared value as JSON carries it: days as numbers, dates as ISO text, tuples as lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class Plan:
    effective_from: date
    agencies: dict[str, dict]  # the agency list after the change (code -> record)
    levels: list[str]
    province: dict
    fields: list[dict]
    procedures: dict[str, dict] = field(default_factory=dict)  # code -> new version to write
    new: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    retired: list[Change] = field(default_factory=list)
    agencies_new: list[Change] = field(default_factory=list)
    agencies_changed: list[Change] = field(default_factory=list)
    agencies_retired: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # read, with a clause set aside: told, not hidden
    without_process: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.procedures or self.agencies_new or self.agencies_changed or self.agencies_retired)

    def view(self) -> dict:
        changes = lambda items: [c.view() for c in items]  # noqa: E731
        return {"effective_from": self.effective_from.isoformat(),
                "procedures": {"new": changes(self.new), "changed": changes(self.changed),
                               "retired": changes(self.retired)},
                "agencies": {"new": changes(self.agencies_new), "changed": changes(self.agencies_changed),
                             "retired": changes(self.agencies_retired)},
                "unreadable": [p.__dict__ for p in self.problems], "notes": [p.__dict__ for p in self.notes],
                "without_process": self.without_process}

    def report(self) -> str:
        lines = [f"Effective from {self.effective_from:%d/%m/%Y}:"]
        for title, items in (("procedures new", self.new), ("procedures changed", self.changed),
                             ("procedures retired", self.retired), ("agencies new", self.agencies_new),
                             ("agencies changed", self.agencies_changed),
                             ("agencies retired", self.agencies_retired)):
            lines.append(f"  {title}: {len(items)}")
            for change in items:
                lines.append(f"    {change.code}  {change.name}")
                lines += [f"      {k}: {_plain(b)} → {_plain(a)}" for k, (b, a) in change.fields.items()]
        if self.notes:
            lines.append(f"  read, with a clause set aside ({len(self.notes)}):")
            lines += [f"    {n}" for n in self.notes]
        if self.without_process:
            lines.append(f"  procedures without a process in processes.yaml ({len(self.without_process)}): "
                         "dossiers are received but not routed until one is written")
            lines.append("    " + ", ".join(self.without_process))
        lines.append(f"  unreadable: {len(self.problems)}")
        lines += [f"    {p}" for p in self.problems]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ sheets


def read_sheet(path: Path | str, content: bytes | None = None, columns: dict = PROCEDURE_COLUMNS
               ) -> list[tuple[int, dict]]:
    """The rows of a spreadsheet (.xlsx, or .csv in UTF-8) as (row number, {field: text}): the header
    is the first of the top 15 rows naming at least two known columns (exports put a title above it)."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(content) if content is not None else path,
                                      read_only=True, data_only=True)
        rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
        book.close()
    elif path.suffix.lower() == ".csv":
        text = content.decode("utf-8-sig") if content is not None else path.read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
    else:
        raise CatalogError(f"{path.name}: a spreadsheet is .xlsx or .csv")
    for index, row in enumerate(rows[:15]):
        mapping = _header(row, columns)
        if len(mapping) >= 2 and "code" in mapping:
            return [(number, {key: _cell(cells, position) for key, position in mapping.items()})
                    for number, cells in enumerate(rows[index + 1:], start=index + 2)
                    if any(c not in (None, "") for c in cells)]
    raise CatalogError(f"{path.name}: no heading row naming the columns ({', '.join(v[0] for v in columns.values())})")


def _header(row, columns) -> dict[str, int]:
    folded = [re.sub(r"\s+", " ", fold(str(c or "")).replace(" .", ".")).strip() if c is not None else ""
              for c in row]
    folded = [re.sub(r"^\d+\.?\s*", "", f) for f in folded]
    found = {}
    for key, names in columns.items():
        position = next((folded.index(n) for n in names if n in folded), None)
        if position is not None:
            found[key] = position
    return found


def _cell(cells, position):
    value = cells[position] if position < len(cells) else None
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))  # an amount typed as a number
        return f"{value:.6f}" if value < 10 else repr(value)  # a procedure code a spreadsheet made a number
    return str(value).strip()


# -------------------------------------------------------------------------------- the plan


def plan(catalog_dir: Path, effective_from: date, procedures: list[tuple[int, dict]] | None,
         agencies: list[tuple[int, dict]] | None = None, procedures_sheet: str = "procedures",
         agencies_sheet: str = "agencies", province: str | None = None) -> Plan:
    """What importing the sheets would change in `catalog_dir` (read, not written). A directory without
    a catalogue yet (a province's first import) needs the agency list and the province's name."""
    catalog_dir = Path(catalog_dir)
    if (catalog_dir / "procedures.yaml").exists():
        Catalog.load(catalog_dir)  # the catalogue in force must itself be sound
        agency_file = yaml.safe_load((catalog_dir / "agencies.yaml").read_text(encoding="utf-8"))
        procedure_file = yaml.safe_load((catalog_dir / "procedures.yaml").read_text(encoding="utf-8"))
    elif agencies and province:
        codes = {AGENCY_CODE.search(row.get("code", "")) for _, row in agencies} - {None}
        suffixes = {m.group(0)[-3:] for m in codes}
        if len(suffixes) != 1:
            raise CatalogError(f"the agency codes end in {sorted(suffixes)}: one province's (H56) expected")
        agency_file = {"province": {"code": suffixes.pop(), "name": province, "time_zone": "Asia/Ho_Chi_Minh"},
                       "levels": list(LEVEL_WORDS), "agencies": []}
        procedure_file = {"fields": [], "procedures": []}
    else:
        raise CatalogError(f"{catalog_dir} holds no catalogue: a first import needs --agencies and --province")
    result = Plan(effective_from, {a["code"]: dict(a) for a in agency_file["agencies"]}, list(agency_file["levels"]),
                  agency_file["province"], [dict(f) for f in procedure_file["fields"]])
    if agencies is not None:
        _plan_agencies(result, agencies, agencies_sheet)
    if procedures is not None:
        latest: dict[str, dict] = {}
        for raw in procedure_file["procedures"]:
            latest[raw["code"]] = raw  # the file lists versions in order
        _plan_procedures(result, procedures, latest, procedures_sheet)
        processes = catalog_dir / "processes.yaml"
        routed = {p["procedure_code"] for p in (yaml.safe_load(processes.read_text(encoding="utf-8"))
                                                 if processes.exists() else {}).get("processes") or []}
        result.without_process = sorted(c.code for c in result.new if c.code not in routed)
    return result


def _plan_agencies(result: Plan, rows, sheet: str) -> None:
    read: dict[str, dict] = {}
    names = {fold(a["name"]): code for code, a in result.agencies.items()}
    pending, seen = [], set()
    for number, row in rows:
        code = row.get("code", "").strip()
        refused = _code_refused(code, AGENCY_CODE, seen, "an e-ID code (000.00.00.H56)")
        seen.add(code)
        if refused:
            result.problems.append(Problem(sheet, number, "code", code, refused))
            continue
        level = _level(row.get("level", ""), result.levels)
        if level is None:
            result.problems.append(Problem(sheet, number, "level", row.get("level", ""),
                                           f"not a level of the catalogue ({', '.join(result.levels)})"))
            continue
        if not row.get("name"):
            result.problems.append(Problem(sheet, number, "name", "", "empty"))
            continue
        read[code] = {"code": code, "name": row["name"], "level": level}
        names[fold(row["name"])] = code
        pending.append((number, row, read[code]))
    for number, row, record in pending:  # parents and communes may come on later rows
        parent = row.get("parent", "")
        record["parent_code"] = _agency(parent, read, names) if parent else None
        if parent and record["parent_code"] is None:
            result.problems.append(Problem(sheet, number, "parent", parent, "no such agency in the sheet"))
            del read[record["code"]]
            continue
        serves = [s for s in re.split(r"[;,\n]+", row.get("serves", "")) if s.strip()]
        codes = [_agency(s, read, names) for s in serves]
        if None in codes:
            result.problems.append(Problem(sheet, number, "serves", row["serves"],
                                           f"no such commune: {serves[codes.index(None)].strip()}"))
            del read[record["code"]]
            continue
        record["serves"] = codes
    for code, record in read.items():
        before = result.agencies.get(code)
        if before is None:
            result.agencies[code] = {k: v for k, v in record.items() if v not in (None, [])}
            result.agencies_new.append(Change(code, record["name"]))
            continue
        differs = {k: (before.get(k) or None, v or None) for k, v in record.items()
                   if (before.get(k) or None) != (v or None)}
        if before.get("effective_to"):
            differs["effective_to"] = (before["effective_to"], None)
        if differs:
            result.agencies[code] = {**{k: v for k, v in before.items() if k != "effective_to"},
                                     **{k: v for k, v in record.items() if v not in (None, [])}}
            for key in ("parent_code", "serves"):
                if not record.get(key):
                    result.agencies[code].pop(key, None)
            result.agencies_changed.append(Change(code, record["name"], differs))
    for code, before in result.agencies.items():
        if code not in seen and not before.get("effective_to"):
            before["effective_to"] = result.effective_from
            result.agencies_retired.append(Change(code, before["name"]))


def _code_refused(code: str, pattern: re.Pattern, earlier: set[str], what: str) -> str | None:
    """Why a row's code is not taken (not of its format, or on an earlier row), or None."""
    if not pattern.fullmatch(code):
        return f"not {what}"
    return "the same code on an earlier row" if code in earlier else None


def _level(text: str, levels: list[str]) -> str | None:
    if text in levels:
        return text
    folded = fold(text).strip()
    return next((level for level, words in LEVEL_WORDS.items() if folded in words and level in levels), None)


def _agency(text: str, agencies: dict, names: dict[str, str]) -> str | None:
    """An agency named by its e-ID code (anywhere in the cell) or by its exact name."""
    codes = set(AGENCY_CODE.findall(text))
    if len(codes) == 1:
        code = codes.pop()
        return code if code in agencies or code in names.values() else None
    if codes:
        return None
    return names.get(fold(text).strip())


def _plan_procedures(result: Plan, rows, latest: dict[str, dict], sheet: str) -> None:
    names = {fold(a["name"]): code for code, a in result.agencies.items()}
    in_sheet: set[str] = set()
    for number, row in rows:
        code = row.get("code", "")
        refused = _code_refused(code, PROCEDURE_CODE, in_sheet, "a national procedure code (1.001193)")
        in_sheet.add(code)
        if refused:
            result.problems.append(Problem(sheet, number, "code", code, refused))
            continue
        problems = []
        version = _version(result, number, row, latest.get(code), names, problems, sheet)
        if problems:
            result.problems += problems
            continue
        before = latest.get(code)
        if before is None:
            result.procedures[code] = {**version, "version": 1}
            result.new.append(Change(code, version["name"]))
            continue
        differs = {k: (_compared(before, k), _compared(version, k)) for k in COMPARED
                   if _compared(before, k) != _compared(version, k)}
        if differs or before.get("retired"):
            if before.get("retired"):
                differs["retired"] = (True, False)
            if _new_version(result, number, sheet, before, {**version, "version": before["version"] + 1}):
                result.changed.append(Change(code, version["name"], differs))
    for code, before in sorted(latest.items()):
        if code not in in_sheet and not before.get("retired"):
            retired = {**before, "version": before["version"] + 1, "retired": True}
            if _new_version(result, None, sheet, before, retired):
                result.retired.append(Change(code, before["name"]))


def _new_version(result: Plan, number, sheet, before: dict, version: dict) -> bool:
    if result.effective_from <= _date(before["effective_from"]):
        result.problems.append(Problem(sheet, number or 0, "code", before["code"],
                                       f"version {before['version']} takes effect {before['effective_from']}: "
                                       "a new version must take effect after it"))
        return False
    result.procedures[before["code"]] = {**version, "effective_from": result.effective_from}
    return True


def _date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _compared(raw: dict, key: str):
    """A version's field as compared: defaults filled, numbers as numbers."""
    value = raw.get(key)
    if key == "processing_time":
        return (Decimal(str(value["value"])), value["unit"])
    if key == "fee_unit":
        return value or "dossier"
    if key in ("fee", "fee_cap", "cutoff"):
        return value if value is not None else (0 if key == "fee" else None)
    if key == "fee_tiers":
        return [(t["per_page"], t.get("pages")) for t in value or []]
    if key == "channels":
        return {c: (_compared(t, "processing_time") if t.get("processing_time") else None, t.get("fee"))
                for c, t in sorted((value or {}).items())}
    if key == "documents":
        return [(d["key"], d["name"], d.get("required", True), d.get("kind", "original"), d.get("copies", 1))
                for d in value]
    return value


def _version(result: Plan, number: int, row: dict, before: dict | None, names, problems, sheet) -> dict:
    """The sheet's row as a procedures.yaml version (without its number); problems appended."""
    def problem(column, reason):
        problems.append(Problem(sheet, number, column, str(row.get(column, "")), reason))

    name = row.get("name", "")
    if not name:
        problem("name", "empty")
    agency_code = _agency(row.get("agency", ""), result.agencies, names)
    agency = result.agencies.get(agency_code)
    if agency is None:
        problem("agency", "name the receiving agency by its e-ID code or exact name (one agency: "
                          "'Ủy ban nhân dân cấp xã' names no commune)")
    elif agency.get("effective_to"):
        problem("agency", f"agency {agency_code} is retired from {agency['effective_to']}")
    elif row.get("level") and not _level_fits(row["level"], agency):
        problem("level", f"agency {agency_code} is of level {agency['level']}")
    field_code = _field(result, row.get("field", ""), row.get("field_code", ""))
    if field_code is None:
        problem("field", "empty")
    version = {"code": row.get("code"), "version": None, "effective_from": result.effective_from, "name": name,
               "field": field_code, "level": agency["level"] if agency else None, "agency_code": agency_code}
    _time_and_fee(version, row, before, problem, lambda column, note: result.notes.append(
        Problem(sheet, number, column, str(row.get(column, "")), note)))
    online = ONLINE_WORDS.get(re.sub(r"\s+", " ", fold(row.get("online_level", ""))).strip())
    if online is None:
        problem("online_level", "the catalogue knows Toàn trình (full) and Một phần (partial)")
    version["online_level"] = online
    documents = _documents(row.get("documents", ""), before)
    if not documents:
        problem("documents", "no document listed")
    version["documents"] = documents
    for carried in ("on_supplement", "form"):  # what the national list does not say: kept as set here
        if before and before.get(carried):
            version[carried] = before[carried]
    return version


def _level_fits(text: str, agency: dict) -> bool:
    """'Cấp Xã' fits a commune and an office serving communes (a ward's police); 'Cấp Tỉnh' the province,
    its departments and their units; a catalogue level itself, that level."""
    level, folded = agency["level"], fold(text).strip()
    if folded in ("cap xa", "xa") and agency.get("serves"):
        return True
    return text == level or level in PROCEDURE_LEVELS.get(folded, {_level(text, [level])})


def _time_and_fee(version: dict, row: dict, before: dict | None, problem, note) -> None:
    try:
        time_ = parse_time(row.get("time"))
    except Unreadable as exc:
        problem("time", str(exc))
        time_ = None
    try:
        fee = parse_fee(row.get("fee"))
    except Unreadable as exc:
        problem("fee", str(exc))
        fee = None
    if time_ is None or fee is None:
        return
    for column, read in (("time", time_), ("fee", fee)):
        for text in read.notes:
            note(column, text)
    version["processing_time"] = time_.default.view()
    cutoff = time_.default.cutoff or (before or {}).get("cutoff")  # a cut-off set here stays
    if cutoff:
        version["cutoff"] = cutoff
    version["fee"] = fee.default.amount
    if fee.default.unit != "dossier":
        version["fee_unit"] = fee.default.unit
    if fee.default.tiers:
        version["fee_tiers"] = [{"per_page": p, **({"pages": n} if n else {})} for p, n in fee.default.tiers]
    if fee.default.cap:
        version["fee_cap"] = fee.default.cap
    channels: dict[str, dict] = {}
    for channel, terms in time_.channels.items():
        channels.setdefault(channel, {})["processing_time"] = terms.view()
    for channel, terms in fee.channels.items():
        if terms.unit != fee.default.unit or terms.tiers:
            problem("fee", f"the {channel} fee is priced differently from the default (per {terms.unit})")
        channels.setdefault(channel, {})["fee"] = terms.amount
    if channels:
        version["channels"] = channels


def _field(result: Plan, name: str, code: str) -> str | None:
    """The field's code: the catalogue's for that name, the sheet's, or one made from its initials."""
    if not name and not code:
        return None
    for known in result.fields:
        if (code and known["code"] == code) or (name and fold(known["name"]).strip() == fold(name).strip()):
            return known["code"]
    made = code or "".join(w[0] for w in fold(name).split() if w[0].isalpha()).upper() or "LV"
    taken = {f["code"] for f in result.fields}
    candidate, suffix = made, 2
    while candidate in taken:
        candidate, suffix = f"{made}{suffix}", suffix + 1
    result.fields.append({"code": candidate, "name": name or candidate})
    return candidate


_BULLET = re.compile(r"^\s*(?:[-+•*–]|\(?\d{1,2}[.)]|[a-zđ]\))\s*")


def _documents(text: str, before: dict | None) -> list[dict]:
    """'Thành phần hồ sơ': one document a line (or a ';'), bản sao / bản chính, '(nếu có)' optional;
    a document the previous version lists under the same name keeps its key."""
    lines = [l for l in re.split(r"\n|;", text or "") if _BULLET.sub("", l).strip(" .:")]
    known = {fold(d["name"]).strip(): d["key"] for d in (before or {}).get("documents", [])}
    documents, keys = [], set()
    for line in lines:
        name = _BULLET.sub("", line).strip(" .")
        folded = fold(name)
        kind = ("original_or_copy" if "ban sao" in folded and "ban chinh" in folded
                else "copy" if "ban sao" in folded or "ban chup" in folded else "original")
        key = known.get(folded.strip()) or _key(folded)
        base, suffix = key, 2
        while key in keys:
            key, suffix = f"{base[:36]}_{suffix}", suffix + 1
        keys.add(key)
        document = {"key": key, "name": name[:400], "kind": kind}
        if "neu co" in folded or "truong hop" in folded:
            document["required"] = False
        documents.append(document)
    return documents


def _key(folded: str) -> str:
    words = re.sub(r"\([^)]*\)", " ", folded).split()
    key = ""
    for word in (re.sub(r"[^a-z0-9]", "", w) for w in words):
        if word and len(key) + len(word) + 1 <= 40:
            key = f"{key}_{word}" if key else word
    key = key or "giay_to"
    return key if key[0].isalpha() else f"gt_{key}"[:40]


def preview(catalog_dir: Path, data: dict) -> dict:
    """The admin console's upload (CatalogImportPreviewV1, loaded): what importing it would change, as
    `Plan.view()`; read, never written (applying is `motcua catalog import --apply`, docs/adopting.md)."""
    sheets = {}
    for kind, columns in (("procedures", PROCEDURE_COLUMNS), ("agencies", AGENCY_COLUMNS)):
        sheet = data.get(kind)
        if not sheet:
            sheets[kind] = None
            continue
        try:
            content = base64.b64decode(sheet["content_base64"], validate=True)
            sheets[kind] = read_sheet(sheet["filename"], content=content, columns=columns)
        except (binascii.Error, ValueError):
            raise ValidationFailed("not base64, or a .csv not in UTF-8", field=f"{kind}.content_base64") from None
        except (zipfile.BadZipFile, KeyError, OSError):
            raise ValidationFailed("not a readable .xlsx file", field=f"{kind}.content_base64") from None
        except CatalogError as exc:
            raise ValidationFailed(str(exc), field=kind) from None
    try:
        return plan(catalog_dir, data["effective_from"], sheets["procedures"], sheets["agencies"],
                    procedures_sheet=(data.get("procedures") or {}).get("filename", ""),
                    agencies_sheet=(data.get("agencies") or {}).get("filename", "")).view()
    except CatalogError as exc:
        raise ValidationFailed(str(exc), field="agencies") from None


# -------------------------------------------------------------------------------- applying


HEADER = ("# Written by `motcua catalog import` (docs/adopting.md); the fields are explained in the demo's\n"
          "# deploy/catalog/{name}. Edit by re-importing the sheet, or by hand: it is validated at start.\n")


def apply(result: Plan, catalog_dir: Path, skip_unreadable: bool = False) -> None:
    """Write the plan's new versions and agencies, after the whole new catalogue has loaded in a copy."""
    if result.problems and not skip_unreadable:
        raise CatalogError(f"{len(result.problems)} unreadable row(s): fix them, or apply without them "
                           "(their procedures stay as they are)")
    catalog_dir = Path(catalog_dir)
    existing = catalog_dir / "procedures.yaml"
    versions = list(yaml.safe_load(existing.read_text(encoding="utf-8"))["procedures"] if existing.exists()
                    else []) + [
        {k: v for k, v in p.items() if v is not None} for p in result.procedures.values()]
    versions.sort(key=lambda p: (p["code"], p["version"]))
    used = {p["field"] for p in versions}  # a field of unreadable rows only waits for them
    texts = {
        "agencies.yaml": _dump("agencies.yaml", {"province": result.province, "levels": result.levels,
                                                 "agencies": list(result.agencies.values())}),
        "procedures.yaml": _dump("procedures.yaml", {"fields": [f for f in result.fields if f["code"] in used],
                                                     "procedures": versions}),
    }
    with tempfile.TemporaryDirectory() as trial:
        trial = Path(trial) / "catalog"
        if catalog_dir.exists():
            shutil.copytree(catalog_dir, trial)
        trial.mkdir(exist_ok=True)
        for name, text in texts.items():
            (trial / name).write_text(text, encoding="utf-8")
        Catalog.load(trial)
        if (trial / "processes.yaml").exists():  # a first import has none yet: the report lists them
            from services.workflow.processes import load_processes
            load_processes(trial, result.province.get("time_zone", "Asia/Ho_Chi_Minh"))
    catalog_dir.mkdir(parents=True, exist_ok=True)
    if not (catalog_dir / "calendar.yaml").exists():  # the national working calendar, as the demo's
        shutil.copy(ROOT / "deploy" / "catalog" / "calendar.yaml", catalog_dir)
    for name, text in texts.items():
        target = catalog_dir / name
        staged = target.with_suffix(".yaml.new")
        staged.write_text(text, encoding="utf-8")
        staged.replace(target)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # every version spells its date out, as a person would
        return True


def _dump(name: str, data: dict) -> str:
    return HEADER.format(name=name) + yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                                                width=110)
