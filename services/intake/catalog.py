"""The procedure catalogue (danh mục thủ tục hành chính) and the agency tree, loaded from
deploy/catalog at start: a broken file refuses to load with file:line: reason."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from pathlib import Path

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from motcua.calendar import UNITS, OfficeHours, WorkingCalendar, parse_days
from motcua.catalog import PEOPLES_COMMITTEE, AgencyFileSchema, AgencySchema, load_data
from motcua.contracts.events import CHANNELS
from motcua.errors import NotFound, ValidationFailed
from motcua.text import fold
from services.intake import declaration

ONLINE_LEVELS = ("full", "partial")
DOCUMENT_KINDS = ("original", "copy", "original_or_copy")
FEE_UNITS = ("dossier", "copy", "page")
ON_SUPPLEMENT = ("resume", "restart")
# Where a dossier may be received (Decree 118/2025/NĐ-CP: tiếp nhận hồ sơ không phụ thuộc địa giới hành
# chính): `agency`, only at the procedure's `agency_code`; `anywhere`, at any agency of the procedure's
# level in the province (any commune for a commune-level procedure), `agency_code` being the default.
RECEPTIONS = ("agency", "anywhere")


@dataclass(frozen=True)
class Terms:
    """Processing time and fee of a procedure on one channel."""

    days: Decimal
    unit: str
    fee: int

    def view(self) -> dict:
        return {"processing_time": {"value": _number(self.days), "unit": self.unit}, "fee": self.fee}


@dataclass(frozen=True)
class FeeTier:
    """A price per page of the original up to `pages` pages (None: every page after the earlier tiers)."""

    per_page: int
    pages: int | None = None


@dataclass(frozen=True)
class Procedure:
    code: str
    version: int
    effective_from: date
    name: str
    field_code: str
    field_name: str
    level: str
    agency_code: str
    processing_days: Decimal
    unit: str
    cutoff: time | None
    fee: int
    fee_unit: str
    channels: dict  # channel -> Terms
    online_level: str
    on_supplement: str
    documents: tuple[dict, ...]
    declaration: tuple[dict, ...] = ()  # the fields of its tờ khai (`form:` in procedures.yaml)
    declaration_schema: Schema = field(default=None, compare=False, repr=False)  # built from them once
    # A fee by pages (phí chứng thực: 2,000 VND a page for the first two, 1,000 from the third, at most
    # 200,000 a copy): the tiers in order and the cap per copy; empty: the flat `fee` per `fee_unit`.
    fee_tiers: tuple[FeeTier, ...] = ()
    fee_cap: int | None = None
    reception: str = "agency"

    @property
    def received_anywhere(self) -> bool:
        return self.reception == "anywhere"
    # Retired (bãi bỏ) from effective_from: not offered any more; dossiers received under an earlier
    # version keep it.
    retired: bool = False

    def __post_init__(self):
        if self.declaration_schema is None:
            object.__setattr__(self, "declaration_schema", declaration.schema_of(self.declaration))

    def check_declaration(self, form: dict) -> dict:
        """The applicant's declaration read by this procedure's fields (ValidationFailed naming one)."""
        return declaration.check(self.declaration_schema, form)

    def terms(self, channel: str) -> Terms:
        return self.channels[channel]

    def fee_for(self, pages: int) -> int:
        """The fee of one copy (one case, one dossier: `fee_unit`) of an original of `pages` pages."""
        if not self.fee_tiers:
            return self.fee * pages if self.fee_unit == "page" else self.fee
        total, left = 0, pages
        for tier in self.fee_tiers:
            counted = left if tier.pages is None else min(left, tier.pages)
            total, left = total + counted * tier.per_page, left - counted
        return total if self.fee_cap is None else min(total, self.fee_cap)

    @property
    def required_documents(self) -> list[dict]:
        return [d for d in self.documents if d["required"]]

    def document(self, key: str) -> dict | None:
        return next((d for d in self.documents if d["key"] == key), None)

    def summary(self) -> dict:
        return {
            "code": self.code, "version": self.version, "effective_from": self.effective_from.isoformat(),
            "name": self.name, "field": self.field_code, "field_name": self.field_name,
            "level": self.level, "agency_code": self.agency_code,
            "processing_time": {"value": _number(self.processing_days), "unit": self.unit},
            "cutoff": self.cutoff.strftime("%H:%M") if self.cutoff else None,
            "fee": self.fee, "fee_unit": self.fee_unit,
            "fee_tiers": [{"per_page": t.per_page, "pages": t.pages} for t in self.fee_tiers],
            "fee_cap": self.fee_cap, "online_level": self.online_level,
            "on_supplement": self.on_supplement, "reception": self.reception,
            "channels": {channel: terms.view() for channel, terms in self.channels.items()},
        }

    def detail(self) -> dict:
        return {**self.summary(), "documents": [dict(d) for d in self.documents],
                "form": [dict(f) for f in self.declaration]}


class _ProcessingTime(Schema):
    value = fields.Raw(required=True)
    unit = fields.Str(required=True, validate=validate.OneOf(UNITS))

    @validates_schema
    def _days(self, data, **_):
        try:
            days = parse_days(data["value"])
        except (ValueError, TypeError) as exc:
            raise ValidationError({"value": [str(exc)]}) from None
        if data["unit"] == "calendar_days" and days != days.to_integral_value():
            raise ValidationError({"value": ["calendar days are whole days"]})


class _ChannelTerms(Schema):
    processing_time = fields.Nested(_ProcessingTime, load_default=None)
    fee = fields.Int(load_default=None, strict=True, validate=validate.Range(min=0))


class _FeeTier(Schema):
    per_page = fields.Int(required=True, strict=True, validate=validate.Range(min=0))
    pages = fields.Int(load_default=None, strict=True, validate=validate.Range(min=1))


class _Document(Schema):
    key = fields.Str(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$",
                                                             error="lower-case letters, digits and _"))
    name = fields.Str(required=True, validate=validate.Length(min=1))
    required = fields.Bool(load_default=True)
    kind = fields.Str(load_default="original", validate=validate.OneOf(DOCUMENT_KINDS))
    copies = fields.Int(load_default=1, strict=True, validate=validate.Range(min=1, max=20))


class _ProcedureSchema(Schema):
    code = fields.Str(required=True, validate=validate.Regexp(
        r"^\d\.\d{6}$", error="not a national procedure code (quote it: YAML reads 1.001193 as a number)"))
    version = fields.Int(required=True, strict=True, validate=validate.Range(min=1))
    effective_from = fields.Date(required=True)
    name = fields.Str(required=True, validate=validate.Length(min=1, max=400))
    field = fields.Str(required=True)
    level = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    processing_time = fields.Nested(_ProcessingTime, required=True)
    cutoff = fields.Time(load_default=None, format="%H:%M")
    fee = fields.Int(load_default=0, strict=True, validate=validate.Range(min=0))
    fee_unit = fields.Str(load_default="dossier", validate=validate.OneOf(FEE_UNITS))
    fee_tiers = fields.List(fields.Nested(_FeeTier), load_default=list)
    fee_cap = fields.Int(load_default=None, strict=True, validate=validate.Range(min=1))
    channels = fields.Dict(keys=fields.Str(validate=validate.OneOf(CHANNELS)),
                           values=fields.Nested(_ChannelTerms), load_default=dict)
    online_level = fields.Str(required=True, validate=validate.OneOf(ONLINE_LEVELS))
    on_supplement = fields.Str(load_default="resume", validate=validate.OneOf(ON_SUPPLEMENT))
    reception = fields.Str(load_default="agency", validate=validate.OneOf(RECEPTIONS))
    retired = fields.Bool(load_default=False)
    documents = fields.List(fields.Nested(_Document), required=True, validate=validate.Length(min=1))
    form = declaration.declaration_fields()

    @validates_schema
    def _tiers(self, data, **_):
        """A tiered fee is by pages, its tiers bounded but the last, `fee` its first price (what a list
        shows as "from"), one price on every channel; a cap only caps tiers."""
        tiers = data.get("fee_tiers") or []
        if data.get("fee_cap") is not None and not tiers:
            raise ValidationError({"fee_cap": ["a cap needs fee_tiers"]})
        if not tiers:
            return
        if data.get("fee_unit") != "page":
            raise ValidationError({"fee_unit": ["fee_tiers price pages: fee_unit must be page"]})
        for index, tier in enumerate(tiers):
            last = index == len(tiers) - 1
            if (tier["pages"] is None) != last:
                raise ValidationError({"fee_tiers": {index: {"pages": [
                    "the last tier has no pages (every page after)" if last else "required but on the last tier"]}}})
        if data.get("fee") != tiers[0]["per_page"]:
            raise ValidationError({"fee": [f"must be the first tier's per_page ({tiers[0]['per_page']})"]})
        if any((terms or {}).get("fee") is not None for terms in data.get("channels", {}).values()):
            raise ValidationError({"channels": ["a tiered fee is the same on every channel"]})

    @validates_schema
    def _documents(self, data, **_):
        keys = [d["key"] for d in data.get("documents", [])]
        for index, key in enumerate(keys):
            if keys.index(key) != index:
                raise ValidationError({"documents": {index: {"key": ["duplicate document key"]}}})


class _CatalogSchema(Schema):
    """procedures.yaml, checked against the agencies: every error points at its line."""

    fields_ = fields.List(fields.Dict(), data_key="fields", required=True)
    procedures = fields.List(fields.Nested(_ProcedureSchema), required=True, validate=validate.Length(min=1))

    def __init__(self, agencies: dict[str, dict], **kwargs):
        super().__init__(**kwargs)
        self.agencies = agencies

    @validates_schema
    def _consistent(self, data, **_):
        field_codes = {f.get("code") for f in data["fields_"]}
        latest: dict[str, dict] = {}
        for index, p in enumerate(data["procedures"]):
            def fail(key, reason):
                raise ValidationError({"procedures": {index: {key: [reason]}}})

            agency = self.agencies.get(p["agency_code"])
            if agency is None:
                fail("agency_code", f"unknown agency {p['agency_code']} (not in agencies.yaml)")
            if agency["level"] != p["level"]:
                fail("level", f"agency {p['agency_code']} is of level {agency['level']}, not {p['level']}")
            if p["reception"] == "anywhere" and p["level"] != "commune":
                fail("reception", "only a commune-level procedure is received anywhere in the province "
                                  "(Decree 118/2025/NĐ-CP)")
            if p["field"] not in field_codes:
                fail("field", f"field {p['field']} is not among the fields")
            previous = latest.get(p["code"])
            if previous is not None and p["version"] != previous["version"] + 1:
                fail("version", f"expected version {previous['version'] + 1} after {previous['version']}")
            if previous is not None and p["effective_from"] <= previous["effective_from"]:
                fail("effective_from", "a new version must take effect after the previous one")
            if previous is None and p["version"] != 1:
                fail("version", "the first version of a procedure is 1")
            if previous is None and p["retired"]:
                fail("retired", "a procedure is retired by a later version, not its first")
            latest[p["code"]] = p


class _Agency(AgencySchema):
    effective_from = fields.Date(load_default=None)
    effective_to = fields.Date(load_default=None)
    office_hours = fields.List(fields.Str(), load_default=None)

    @validates_schema
    def _own(self, data, **_):
        if data["effective_from"] and data["effective_to"] and data["effective_to"] <= data["effective_from"]:
            raise ValidationError({"effective_to": ["must be after effective_from"]})
        if data["office_hours"] is not None:
            try:
                OfficeHours.from_strings(*data["office_hours"])
            except ValueError as exc:
                raise ValidationError({"office_hours": [str(exc)]}) from None


class _AgencyFile(AgencyFileSchema):
    class Meta:
        unknown = EXCLUDE

    agencies = fields.List(fields.Nested(_Agency), required=True, validate=validate.Length(min=1))


class Catalog:
    """Agencies and every version of every procedure, read-only once loaded."""

    def __init__(self, agencies: list[dict], procedures: list[Procedure], province: str):
        self.agencies = {a["code"]: a for a in agencies}
        # the place on a form's place and date line: the province's name without its kind of unit
        self.place = province.removeprefix("Tỉnh ").removeprefix("Thành phố ")
        self.versions: dict[str, list[Procedure]] = {}
        for procedure in sorted(procedures, key=lambda p: (p.code, p.version)):
            self.versions.setdefault(procedure.code, []).append(procedure)
        # Folded once at load and searched by substring: a province's 2,000 procedures answer in a few
        # milliseconds (bench/catalog_search.py), not folded again at every keystroke.
        self._search_keys = {(p.code, p.version): self._search_key(p) for p in procedures}

    @classmethod
    def load(cls, catalog_dir: Path) -> "Catalog":
        catalog_dir = Path(catalog_dir)
        agency_file = load_data(catalog_dir / "agencies.yaml", _AgencyFile())
        agencies = agency_file["agencies"]
        data = load_data(catalog_dir / "procedures.yaml", _CatalogSchema({a["code"]: a for a in agencies}))
        field_names = {f["code"]: f["name"] for f in data["fields_"]}
        return cls(agencies, [_procedure(raw, field_names[raw["field"]]) for raw in data["procedures"]],
                   agency_file["province"]["name"])

    def agency_view(self, code: str) -> dict:
        a = self.agencies[code]
        return {"code": a["code"], "name": a["name"], "level": a["level"], "parent_code": a["parent_code"],
                "effective_from": _iso(a["effective_from"]), "effective_to": _iso(a["effective_to"]),
                "office_hours": a["office_hours"] or None}

    def calendars(self, default: WorkingCalendar) -> dict[str, WorkingCalendar]:
        """A working calendar per agency with its own office hours (same days off as `default`)."""
        return {code: default.with_office_hours(OfficeHours.from_strings(*a["office_hours"]))
                for code, a in self.agencies.items() if a["office_hours"]}

    def receiving_agencies(self, procedure: Procedure, on: date) -> list[str]:
        """Where a dossier of `procedure` may be received on `on`: its agency, or (received anywhere) every
        agency of its level in existence that day."""
        if not procedure.received_anywhere:
            return [procedure.agency_code]
        return [code for code, a in self.agencies.items() if a["level"] == procedure.level
                and (a["effective_from"] is None or a["effective_from"] <= on)
                and (a["effective_to"] is None or on < a["effective_to"])]

    def receiving_agency(self, procedure: Procedure, on: date, chosen: str | None = None,
                         counter: str | None = None, address: str | None = None) -> str:
        """The agency that receives a dossier (its code, counters and report line): the one `chosen` (the
        online applicant's choice), else the `counter` it is handed in at, else the commune the
        applicant's `address` names, else the procedure's own agency. ValidationFailed naming
        `receiving_agency_code` for an agency that may not receive it."""
        allowed = self.receiving_agencies(procedure, on)
        if chosen is not None:
            if chosen not in allowed:
                raise ValidationFailed(f"{chosen} does not receive procedure {procedure.code}"
                                       + ("" if procedure.received_anywhere else
                                          f": only {procedure.agency_code} does"), field="receiving_agency_code")
            return chosen
        if counter in allowed:
            return counter
        named = [code for code in allowed if _names_area(address, self.agencies[code]["name"])]
        return named[0] if len(named) == 1 else procedure.agency_code

    def procedure(self, code: str, version: int | None = None, on: date | None = None) -> Procedure:
        """A given version, or the one in force on `on` (the latest version when `on` is None)."""
        versions = self.versions.get(code)
        if not versions:
            raise NotFound(f"no procedure {code}", field="procedure_code")
        if version is not None:
            found = next((p for p in versions if p.version == version), None)
            if found is None:
                raise NotFound(f"no version {version} of procedure {code}", field="version")
            return found
        in_force = [p for p in versions if on is None or p.effective_from <= on]
        if not in_force or in_force[-1].retired:
            when = f"on {on:%d/%m/%Y}" if on else "any more"
            raise NotFound(f"procedure {code} is not in force {when}", field="procedure_code")
        return in_force[-1]

    def current(self, on: date | None) -> list[Procedure]:
        found = []
        for code in sorted(self.versions):
            try:
                found.append(self.procedure(code, on=on))
            except NotFound:
                continue  # not yet in force
        return found

    def search(self, query: str | None, on: date | None = None) -> list[Procedure]:
        """Whole words without diacritics, the last one as typed so far: 'dang ky khai si' finds
        'Đăng ký khai sinh'. Matches the code, name, field and receiving agency's name."""
        found = self.current(on)
        words = fold(query or "").split()
        if not words:
            return found
        *complete, partial = words
        complete, partial = [f" {w} " for w in complete], f" {partial}"

        def matches(procedure: Procedure) -> bool:
            text = self._search_keys[procedure.code, procedure.version][0]
            return partial in text and all(w in text for w in complete)

        phrase = " ".join(words)
        # the procedures whose name holds the words as typed, in that order, come first
        return sorted((p for p in found if matches(p)),
                      key=lambda p: (phrase not in self._search_keys[p.code, p.version][1], len(p.name)))

    def _search_key(self, p: Procedure) -> tuple[str, str]:
        """(' word word … ' of its code, name, field and receiving agency; its name) folded."""
        agency = self.agencies[p.agency_code]["name"]
        words = fold(f"{p.code} {p.name} {p.field_code} {p.field_name} {agency}").split()
        return f" {' '.join(words)} ", fold(p.name)


def _procedure(raw: dict, field_name: str) -> Procedure:
    default = Terms(parse_days(raw["processing_time"]["value"]), raw["processing_time"]["unit"], raw["fee"])
    channels = {}
    for channel in CHANNELS:
        override = raw["channels"].get(channel) or {}
        time_ = override.get("processing_time")
        fee = override.get("fee")
        channels[channel] = Terms(parse_days(time_["value"]) if time_ else default.days,
                                  time_["unit"] if time_ else default.unit,
                                  default.fee if fee is None else fee)
    return Procedure(
        code=raw["code"], version=raw["version"], effective_from=raw["effective_from"], name=raw["name"],
        field_code=raw["field"], field_name=field_name, level=raw["level"], agency_code=raw["agency_code"],
        processing_days=default.days, unit=default.unit, cutoff=raw["cutoff"], fee=raw["fee"],
        fee_unit=raw["fee_unit"], channels=channels, online_level=raw["online_level"],
        on_supplement=raw["on_supplement"], documents=tuple(raw["documents"]), declaration=tuple(raw["form"]),
        fee_tiers=tuple(FeeTier(**tier) for tier in raw["fee_tiers"]), fee_cap=raw["fee_cap"],
        reception=raw["reception"], retired=raw["retired"])


def _names_area(address: str | None, agency_name: str) -> bool:
    """The address names the agency's area ("…, phường Hạc Thành" or "…, Hạc Thành" for "Ủy ban nhân dân
    phường Hạc Thành"), as whole words, with or without diacritics."""
    if not address or not agency_name.startswith(PEOPLES_COMMITTEE):
        return False
    words = [w.strip(".") for w in fold(address).split()]
    area = fold(agency_name.removeprefix(PEOPLES_COMMITTEE)).split()[1:]  # without xã / phường
    return any(words[i:i + len(area)] == area for i in range(len(words) - len(area) + 1))


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
