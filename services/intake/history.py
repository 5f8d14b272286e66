"""Hồ sơ của hệ thống cũ: the dossiers a province brings from the system it leaves, read from the
exchange file (`docs/history-format.md`, CSV or JSON Lines) and taken in by intake, which owns them.

Each row is checked on its own (`HistoryRecordV1`, the catalogue's procedures and agencies): a bad one
is reported with its line and reason and the others go in. A row becomes `Dossier.imported(...)`: the
dossier as intake keeps it (personal data sealed as any other, `repository.py`) and the events its life
implies, marked `imported`, written to intake's outbox in the same transaction, so reporting, the
national-portal queue and public tracking learn of it as of any dossier. The dossier code is the key: a
code intake already holds is skipped, so importing a file again changes nothing. A code of the live
shape (`{agency}-{yyMMdd}-{NNNN}`) moves that agency's daily sequence past it, so the live platform
never hands it out again.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Iterable, Iterator
from zoneinfo import ZoneInfo

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from motcua.contracts.events import CHANNELS, RETURN_METHODS, STATUS_CODES
from motcua.contracts.rpc import ApplicantV1, NfcSchema
from motcua.privacy import tracking_key
from motcua.text import normalise_phone
from services.intake.catalog import Catalog, Procedure
from services.intake.domain import Dossier, last4
from services.intake.search import applicant_keys

# DOMAIN.md's numbering of channels (1 counter, 2 online, 3 public postal service) and statuses, as old
# systems export them, beside the names.
CHANNEL_CODES = {"1": "counter", "2": "online", "3": "postal"}
STATUS_NAMES = {str(code): name for name, code in STATUS_CODES.items()}
TIMES = ("submitted_at", "received_at", "due_at", "finished_at", "returned_at", "paused_at")
# Final statuses that a result, a refusal, a withdrawal or a stop closed: `finished_at` says when.
CLOSED = ("refused", "withdrawn", "stopped", "result_ready", "returned")
PAUSED = ("supplement_requested", "awaiting_payment")
APPLICANT_COLUMNS = ("full_name", "id_number", "phone", "email", "address", "type", "tax_code")
NO_APPLICANT = {"full_name": "", "id_number": "", "phone": ""}
LIVE_CODE = re.compile(r"^(?P<agency>.+)-(?P<day>\d{6})-(?P<number>\d{4})$")


class _LocalTimes(NfcSchema):
    """ISO 8601 times; one without an offset is the province's local time (old systems export so)."""

    def __init__(self, zone: ZoneInfo | None = None, **kwargs):
        super().__init__(**kwargs)
        self.zone = zone  # a nested schema's is set by its parent's

    def localised(self, data: dict, names: Iterable[str]) -> dict:
        for name in names:
            value = data.get(name)
            if isinstance(value, str):
                try:
                    moment = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
                except ValueError:
                    continue  # the field's own validation names it
                data[name] = (moment if moment.tzinfo else moment.replace(tzinfo=self.zone)).isoformat()
        return data


class StepV1(_LocalTimes):
    """One step of the old system's process: the agency, its name, when it started and finished, outcome."""

    agency_code = fields.Str(required=True, validate=validate.Length(min=1, max=20))
    step = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=200))
    started_at = fields.AwareDateTime(required=True)
    finished_at = fields.AwareDateTime(load_default=None, allow_none=True)
    outcome = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=200))

    @pre_load
    def _local(self, data, **_):
        return self.localised(dict(data), ("started_at", "finished_at")) if isinstance(data, dict) else data

    @validates_schema
    def _order(self, data, **_):
        if data.get("finished_at") and data["finished_at"] < data["started_at"]:
            raise ValidationError("finishes before it starts", "finished_at")


class HistoryRecordV1(_LocalTimes):
    """One dossier of the exchange file (docs/history-format.md)."""

    code = fields.Str(required=True, validate=validate.Regexp(
        r"^[0-9A-Za-z][0-9A-Za-z._/-]{0,39}$", error="1-40 letters, digits and . _ / -"))
    procedure_code = fields.Str(required=True, validate=validate.Length(min=1, max=20))
    agency_code = fields.Str(required=True, validate=validate.Length(min=1, max=20))
    channel = fields.Str(required=True, validate=validate.OneOf(CHANNELS))
    status = fields.Str(required=True, validate=validate.OneOf(STATUS_CODES))
    submitted_at = fields.AwareDateTime(required=True)
    received_at = fields.AwareDateTime(load_default=None)
    due_at = fields.AwareDateTime(load_default=None)
    finished_at = fields.AwareDateTime(load_default=None)
    returned_at = fields.AwareDateTime(load_default=None)
    paused_at = fields.AwareDateTime(load_default=None)
    return_method = fields.Str(load_default=None, validate=validate.OneOf(RETURN_METHODS))
    outcome = fields.Str(load_default=None, validate=validate.OneOf(("approved", "refused")))
    amount_vnd = fields.Int(load_default=None, strict=False, validate=validate.Range(min=0))
    note = fields.Str(load_default=None, validate=validate.Length(max=2000))
    applicant = fields.Nested(ApplicantV1, load_default=None)
    steps = fields.List(fields.Nested(StepV1), load_default=list)

    def __init__(self, zone: ZoneInfo, **kwargs):
        super().__init__(zone, **kwargs)
        self.fields["steps"].inner.schema.zone = zone

    @pre_load
    def _shape(self, data, **_):
        if not isinstance(data, dict):
            raise ValidationError("a dossier is an object", "_schema")
        data = {key: value for key, value in data.items() if value not in ("", None)}  # empty cells: absent
        if isinstance(data.get("channel"), (str, int)):
            data["channel"] = CHANNEL_CODES.get(str(data["channel"]), data["channel"])
        if isinstance(data.get("status"), (str, int)):
            data["status"] = STATUS_NAMES.get(str(data["status"]), data["status"])
        return self.localised(data, TIMES)

    @validates_schema
    def _life(self, data, **_):
        """The times the final status needs, in the order a dossier's life has them."""
        status = data["status"]
        if data["received_at"] is None and status not in ("submitted", "refused", "withdrawn", "supplement_requested"):
            raise ValidationError(f"a dossier {status} was received: give received_at", "received_at")
        if data["received_at"] is not None:
            if status in ("submitted", "refused"):
                raise ValidationError(f"a dossier {status} was not received", "received_at")
            if data["due_at"] is None:
                raise ValidationError("a received dossier has its appointment (ngày hẹn trả)", "due_at")
        if status in CLOSED and data["finished_at"] is None:
            raise ValidationError(f"a dossier {status} says when: give finished_at", "finished_at")
        if status in PAUSED and data["paused_at"] is None:
            raise ValidationError(f"a dossier {status} says since when: give paused_at", "paused_at")
        if data["steps"] and data["received_at"] is None:
            raise ValidationError("steps follow reception: give received_at", "steps")
        order = [("submitted_at", data["submitted_at"]), ("received_at", data["received_at"]),
                 *(("steps", step["started_at"]) for step in data["steps"]),
                 ("paused_at", data["paused_at"] if status in PAUSED else None),
                 ("finished_at", data["finished_at"] if status in CLOSED else None),
                 ("returned_at", data["returned_at"] if status == "returned" else None)]
        known = [(name, moment) for name, moment in order if moment is not None]
        for (before, earlier), (name, later) in zip(known, known[1:]):
            if later < earlier:
                raise ValidationError(f"earlier than {before}", name)


def read_rows(file: IO[str], fmt: str) -> Iterator[tuple[int, dict | str]]:
    """(line, the row as a dict) for each dossier of `file`, or (line, why it cannot be read). CSV: one
    row per dossier, `applicant_<x>` columns, `steps` as a JSON list; JSON Lines: one object per line."""
    if fmt == "jsonl":
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                yield number, f"not JSON: {exc.msg} at column {exc.colno}"
        return
    reader = csv.DictReader(file)
    for row in reader:
        line = reader.line_num
        if None in row:
            yield line, f"{len(row[None])} cell(s) more than the header's {len(reader.fieldnames)} columns"
            continue
        applicant = {name: row.pop(f"applicant_{name}") for name in APPLICANT_COLUMNS if f"applicant_{name}" in row}
        if any(applicant.values()):
            row["applicant"] = {name: value for name, value in applicant.items() if value}
        if row.get("steps"):
            try:
                row["steps"] = json.loads(row["steps"])
            except ValueError as exc:
                yield line, f"steps: not a JSON list: {exc.msg}"
                continue
        yield line, row


def format_of(path: str) -> str:
    return "jsonl" if path.endswith((".jsonl", ".ndjson", ".json")) else "csv"


def reason(errors) -> str:
    """A validation error as one line: `field: message; …` (nested fields dotted)."""
    parts = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix and key != "_schema" else (prefix or str(key)), inner)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            parts.append(f"{prefix}: {' '.join(value)}")
        else:
            for item in value:
                walk(prefix, item)

    walk("", errors)
    return "; ".join(parts)


@dataclass
class Outcome:
    """What an import did: dossiers taken in, already there (skipped), and the rows refused with why."""

    imported: int = 0
    present: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


class Importer:
    """Checks rows against the catalogue and takes batches of them into intake."""

    def __init__(self, catalog: Catalog, zone: ZoneInfo, tracking_secret: str, search_secret: str):
        self.catalog = catalog
        self.zone = zone
        self.tracking_secret = tracking_secret
        self.search_secret = search_secret
        self.schema = HistoryRecordV1(zone)

    def check(self, raw: dict | str) -> tuple[dict, Procedure] | str:
        """The row loaded with the procedure version it was received under, or why it is refused."""
        if isinstance(raw, str):
            return raw
        try:
            record = self.schema.load(raw)
        except ValidationError as exc:
            return reason(exc.messages)
        for name, code in (("agency_code", record["agency_code"]),
                           *(("steps.agency_code", step["agency_code"]) for step in record["steps"])):
            if code not in self.catalog.agencies:
                return f"{name}: no agency {code} in the catalogue"
        versions = self.catalog.versions.get(record["procedure_code"])
        if not versions:
            return f"procedure_code: no procedure {record['procedure_code']} in the catalogue"
        day = (record["received_at"] or record["submitted_at"]).astimezone(self.zone).date()
        in_force = [p for p in versions if p.effective_from <= day]
        return record, (in_force[-1] if in_force else versions[0])  # before its first version: the oldest known

    def take(self, uow, rows: list[tuple[dict, Procedure]]) -> tuple[int, int]:
        """Take the checked rows in, in one transaction: (imported, already there)."""
        present = uow.dossiers.existing([record["code"] for record, _ in rows])
        numbers: dict[tuple[str, date], int] = {}
        new = []
        for record, procedure in rows:
            code = record["code"]
            if code in present:
                continue
            present.add(code)  # the same code twice in a file: the first row counts
            new.append(Dossier.imported(record=record, procedure=procedure, **self._applicant(record)))
            self._live_number(code, numbers)
        uow.dossiers.add_all(new)
        for dossier in new:
            for event_type, data in dossier.collect_events():
                uow.emit(event_type, data)
        if numbers:
            uow.dossiers.skip_numbers(numbers)
        uow.commit()
        return len(new), len(rows) - len(new)

    def _applicant(self, record: dict) -> dict:
        """The applicant as intake keeps one (phone normalised; search keys; the tracking key of the
        phone's last 4 digits), or nobody when the old system's export has none."""
        applicant = record["applicant"]
        if applicant is None:
            return {"applicant": NO_APPLICANT, "search_keys": {},
                    "tracking_key": tracking_key(self.tracking_secret, record["code"], "")}
        applicant = {**applicant, "phone": normalise_phone(applicant["phone"])}
        return {"applicant": applicant, "search_keys": applicant_keys(self.search_secret, applicant),
                "tracking_key": tracking_key(self.tracking_secret, record["code"], last4(applicant["phone"]))}

    def _live_number(self, code: str, numbers: dict[tuple[str, date], int]) -> None:
        found = LIVE_CODE.match(code)
        if found is None or found["agency"] not in self.catalog.agencies:
            return  # not of the live shape: the live sequence cannot make it
        try:
            day = datetime.strptime(found["day"], "%y%m%d").date()
        except ValueError:
            return
        key = (found["agency"], day)
        numbers[key] = max(numbers.get(key, 0), int(found["number"]))


def import_rows(importer: Importer, rows: Iterable[tuple[int, dict | str]], unit_of_work, batch_size: int = 500,
                on_progress=lambda line: None) -> Outcome:
    """Every row of `rows` checked, the good ones taken in by batches, each in a fresh `unit_of_work()`;
    `on_progress(line)` after each batch."""
    outcome, batch, line = Outcome(), [], 0

    def flush() -> None:
        if batch:
            uow = unit_of_work()
            try:
                imported, present = importer.take(uow, batch)
            finally:
                uow.close()
            outcome.imported += imported
            outcome.present += present
            batch.clear()
        on_progress(line)

    for line, raw in rows:
        checked = importer.check(raw)
        if isinstance(checked, str):
            outcome.refused.append((line, checked))
            continue
        batch.append(checked)
        if len(batch) >= batch_size:
            flush()
    flush()
    return outcome
