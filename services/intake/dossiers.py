"""Intake's service layer: each command or workflow event loads a dossier through the unit of work's
repository, calls one rule of `domain.Dossier`, saves it and emits the events it recorded. Commands
commit once; event handlers leave the commit to `apply_once` (several may share one transaction).
"""
from __future__ import annotations

import base64
from datetime import date, datetime, time, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

from motcua.access import AgencyTree, may_read
from motcua.calendar import Decisions, WorkingCalendar, local_iso
from motcua.contracts.events import POSTAL_KINDS
from motcua.contracts.lifecycle import allowed_actions
from motcua.errors import Forbidden, NotFound, ValidationFailed
from motcua.identity import Caller
from motcua.idempotency import Command, run_once
from motcua.privacy import seal_personal_fields, tracking_key, unseal_personal_fields
from motcua.text import normalise_phone
from services.intake import documents, forms
from services.intake.blobs import BlobStore
from services.intake.catalog import Catalog
from services.intake.domain import OWED_AT, OWED_ON, ApplicantProof, Dossier, Schedule, last4, submitter, unknown
from services.intake.search import applicant_keys
from services.intake.signing import DocumentSigner


class Policy:
    """What intake needs besides the database: the catalogue, the calendars, and two keys: the tracking
    keys' (shared with reporting and the gateway, which check them) and the search key of the applicants'
    lookup hashes (the applicant's ID number and phone, never stored in clear for search)."""

    def __init__(self, catalog: Catalog, calendar: WorkingCalendar, tracking_key: str, search_key: str,
                 store: BlobStore, catalog_dir: str | None = None):
        self.catalog = catalog
        self.catalog_dir = catalog_dir  # where the catalogue was read: what an import is compared against
        self.calendar = calendar
        self.tracking_key = tracking_key
        self.search_key = search_key
        self.store = store
        self.agency_calendars = catalog.calendars(calendar)
        self.official = calendar.decisions  # calendar.yaml's; the admin's recorded ones go on top
        self.tree = AgencyTree.from_agencies(catalog.agencies.values())  # who oversees whom (parent_code)

    def use_decisions(self, decisions: Decisions) -> None:
        """Count with `decisions` from now on (calendar.yaml's and the admin's recorded ones), in every
        agency's office hours."""
        self.calendar = self.calendar.with_decisions(decisions)
        self.agency_calendars = self.catalog.calendars(self.calendar)

    def calendar_for(self, agency_code: str | None) -> WorkingCalendar:
        """The agency's own office hours where agencies.yaml sets them, else the province's."""
        return self.agency_calendars.get(agency_code, self.calendar)

    def schedule(self, dossier: Dossier) -> Schedule:
        """The procedure version the dossier was received under (whatever is in force today), in the
        receiving agency's office hours."""
        return Schedule(self.catalog.procedure(dossier.procedure_code, version=dossier.procedure_version),
                        self.calendar_for(dossier.agency_code))


def _load(uow, code: str, for_update: bool = True) -> Dossier:
    dossier = uow.dossiers.get(code, for_update=for_update)
    if dossier is None:
        raise NotFound(unknown(code), field="code")
    return dossier


def publish(uow, dossier: Dossier) -> None:
    """The dossier's changes and the events its rules recorded, in the current transaction; a shipment
    the applicant asked for is owed to the postal service once its moment comes (domain.OWED_ON)."""
    uow.dossiers.save(dossier)
    for event_type, data in dossier.collect_events():
        uow.emit(event_type, data)
        kind = OWED_ON.get(event_type)
        if kind in dossier.postal_services:
            uow.shipments.owe(dossier.code, kind, data[OWED_AT[event_type]])


def _commit(uow, dossier: Dossier) -> Dossier:
    publish(uow, dossier)
    uow.commit()
    return dossier


# -- commands (RPC) ---------------------------------------------------------------------------------

def once(uow, command: Command | None, view: Callable[[], dict], now: datetime, ttl: timedelta) -> dict:
    """`motcua.idempotency.run_once` of a command answering a dossier's `view()`: the view is stored for
    repeats with its personal fields (ID number, phone, name, address, form…) sealed under intake's
    results key (sealing.py), so `command_results` holds them no more in clear than `dossiers` does."""
    if command is None:  # nothing is stored without a key
        return view()
    key = uow.dossiers.data_keys.results_key(uow.session)
    made: dict = {}

    def run() -> dict:
        made["view"] = view()
        made["sealed"] = seal_personal_fields(made["view"], key)
        return made["sealed"]

    result = run_once(uow, command, run, now, ttl)
    if made and result is made["sealed"]:
        return made["view"]  # this call's own view, sealed only to be stored: not opened again
    return unseal_personal_fields(result, key)  # the first call's, stored


def submit(uow, policy: Policy, payload: dict, caller: Caller | None, now: datetime) -> Dossier:
    """Nộp hồ sơ (a repeat under the same Idempotency-Key never gets here: `motcua.idempotency`)."""
    local_day = now.astimezone(policy.calendar.tz).date()
    procedure = policy.catalog.procedure(payload["procedure_code"], on=local_day)
    counter = caller.agency_code if caller is not None and payload["channel"] != "online" else None
    agency_code = policy.catalog.receiving_agency(procedure, local_day, payload.get("receiving_agency_code"),
                                                  counter, payload["applicant"].get("address"))
    submitted_by = submitter(agency_code, payload["channel"], caller)
    form = procedure.check_declaration(payload.get("form") or {})
    uploads = documents.decode(payload.get("documents") or [])
    code = uow.dossiers.next_code(agency_code, local_day)
    applicant = {**payload["applicant"], "phone": normalise_phone(payload["applicant"]["phone"])}
    verified = caller is not None and caller.is_citizen
    if verified:  # signed in with VNeID: the name and ID number it verified, whatever the payload says
        applicant.update(full_name=caller.citizen_name or applicant["full_name"], id_number=caller.citizen_id)
    dossier = Dossier.submit(
        code=code, procedure=procedure, agency_code=agency_code, channel=payload["channel"],
        submitted_by=submitted_by, applicant=applicant, search_keys=applicant_keys(policy.search_key, applicant),
        form=form, uploads=uploads, now=now, tracking_key=tracking_key(policy.tracking_key, code, last4(applicant["phone"])),
        postal_services=tuple(kind for kind in POSTAL_KINDS if (payload.get("postal") or {}).get(kind)),
        vneid_verified=verified)
    uow.dossiers.add(dossier)
    documents.keep(uploads, policy.store)
    return _commit(uow, dossier)


def receive(uow, policy: Policy, code: str, caller: Caller, now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.receive(caller, policy.schedule(dossier), now)
    return _commit(uow, dossier)


def refuse(uow, code: str, reason: str, caller: Caller, now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.refuse(caller, reason, now)
    return _commit(uow, dossier)


def request_supplement(uow, code: str, items: list[str], note: str | None, caller: Caller,
                       now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.request_supplement(caller, items, note, now)
    return _commit(uow, dossier)


def supplement(uow, policy: Policy, code: str, caller: Caller | None, proof: ApplicantProof | None,
               now: datetime, uploads: list[dict] = ()) -> Dossier:
    decoded = documents.decode(list(uploads))
    dossier = _load(uow, code)
    dossier.supplement(caller, proof, decoded, policy.schedule(dossier), now)
    documents.keep(decoded, policy.store)
    return _commit(uow, dossier)


def withdraw(uow, code: str, reason: str | None, caller: Caller | None, proof: ApplicantProof | None,
             now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.withdraw(caller, proof, reason, now)
    return _commit(uow, dossier)


def reschedule(uow, code: str, new_due_at: datetime, reason: str, caller: Caller, now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.reschedule(caller, new_due_at, reason, now)
    return _commit(uow, dossier)


def rate(uow, code: str, rating: int, comment: str | None, caller: Caller | None, proof: ApplicantProof | None,
         now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.rate(caller, proof, rating, comment, now)
    return _commit(uow, dossier)


def confirm_payment(uow, policy: Policy, code: str, receipt_number: str, caller: Caller, now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.confirm_payment(caller, receipt_number, policy.schedule(dossier), now)
    return _commit(uow, dossier)


def return_result(uow, code: str, method: str, caller: Caller, now: datetime) -> Dossier:
    dossier = _load(uow, code)
    dossier.return_result(caller, method, now)
    return _commit(uow, dossier)


def store_step_documents(uow, policy: Policy, code: str, uploads: list[dict], caller: Caller,
                         signer: DocumentSigner | None = None) -> list[dict]:
    """Kept for a step's completion: checked, their PDFs signed with the caller's agency's certificate
    when a `signer` is configured (ký số: never kept unsigned if signing fails), and stored; recorded on
    the dossier only once workflow accepted the completion (`task_completed` names them), so a refused
    completion records nothing."""
    get_for_staff(uow, code, caller, policy.tree)
    decoded = documents.decode(uploads)
    documents.check(decoded)
    if signer is not None:
        if caller.agency_code is None:
            raise Forbidden("a signed result is issued by an agency: sign in as one of its officers")
        reason = f"Kết quả giải quyết hồ sơ {code}"
        decoded = documents.signed(decoded, lambda pdf: signer.sign_pdf(pdf, caller.agency_code, reason))
    refs = documents.check(decoded)  # a signed PDF is larger: still within the limits
    documents.keep(decoded, policy.store)
    return refs


def certify_copy(uow, policy: Policy, code: str, document_id: int, caller: Caller, signer: DocumentSigner | None,
                 now: datetime) -> Dossier:
    """Chứng thực điện tử: a PDF among the dossier's documents, signed with the certifying officer's own
    certificate, joins the list as its certified copy (the original stays as it was)."""
    if signer is None:
        raise NotFound("digital signing is not configured here (INTAKE_SIGNING)", field="document_id")
    original = _certifiable(_load(uow, code, for_update=False), code, document_id, caller)
    uow.commit()  # no lock and no transaction held while the signing service answers (seconds)
    copy = documents.Upload(original.key, f"chung-thuc-{original.filename}"[:200], signer.sign_pdf(
        policy.store.get(original.sha256), caller.username, f"Chứng thực bản sao đúng với bản chính, hồ sơ {code}"))
    documents.check([copy])
    documents.keep([copy], policy.store)
    dossier = _load(uow, code)
    dossier.certified_copy(_certifiable(dossier, code, document_id, caller), copy.ref(), caller, now)
    return _commit(uow, dossier)


def _certifiable(dossier: Dossier, code: str, document_id: int, caller: Caller):
    """The document `document_id` of `dossier` that `caller` may certify a copy of."""
    original = dossier.document(document_id)
    if original is None:
        raise NotFound(f"no document {document_id} in dossier {code}", field="document_id")
    caller.require("receptionist", "specialist", agency_code=dossier.agency_code)
    if original.content_type != "application/pdf":
        raise ValidationFailed("only a PDF can carry a signature", field="document_id")
    return original


# -- workflow's events (no commit: apply_once commits, possibly after several) ----------------------

def task_assigned(uow, data: dict) -> None:
    dossier = _load(uow, data["dossier_code"])
    dossier.task_assigned(data["agency_code"], data["step"], data["assigned_at"])
    publish(uow, dossier)


def result_ready(uow, data: dict) -> None:
    dossier = _load(uow, data["dossier_code"])
    dossier.result_ready(data["agency_code"], data["finished_at"], data.get("outcome", "approved"), data.get("reason"))
    publish(uow, dossier)


def supplement_needed(uow, data: dict) -> None:
    dossier = _load(uow, data["dossier_code"])
    dossier.supplement_needed(data["agency_code"], data["items"], data.get("note"), data["requested_by"],
                              data["requested_at"])
    publish(uow, dossier)


def payment_required(uow, data: dict) -> None:
    dossier = _load(uow, data["dossier_code"])
    dossier.payment_required(data["agency_code"], data["amount_vnd"], data.get("note"), data["required_at"])
    publish(uow, dossier)


def processing_stopped(uow, data: dict) -> None:
    dossier = _load(uow, data["dossier_code"])
    dossier.processing_stopped(data["agency_code"], data["stopped_by"], data["reason"], data["stopped_at"])
    publish(uow, dossier)


def delay_predicted(uow, data: dict) -> None:
    dossier = _load(uow, data["dossier_code"])
    dossier.delay_predicted(data["proposed_due_at"], data["current_agency_code"])
    publish(uow, dossier)


def task_completed(uow, data: dict) -> None:
    """Only a completion with documents concerns intake (the handler skips the others before the inbox)."""
    dossier = _load(uow, data["dossier_code"])
    dossier.step_documents(data["documents"], f"{data['completed_by']} ({data['agency_code']})",
                           data["completed_at"])
    publish(uow, dossier)


# -- reads ------------------------------------------------------------------------------------------

def get_for_staff(uow, code: str, caller: Caller, tree: AgencyTree) -> Dossier:
    """Staff of an agency involved in the dossier; leaders and agency admins of an agency above one
    (cơ quan cấp trên, `tree`); a platform admin. One statement, no lock, no write."""
    dossier = _load(uow, code, for_update=False)
    if not may_read(caller, set(dossier.agencies), tree):
        raise Forbidden("this dossier is not handled by your agency")
    return dossier


def get_for_reader(uow, code: str, caller: Caller, tree: AgencyTree) -> Dossier:
    """Staff as `get_for_staff`; a citizen signed in with VNeID, their own dossier (another's is
    answered as an unknown code)."""
    if not caller.is_citizen:
        return get_for_staff(uow, code, caller, tree)
    dossier = _load(uow, code, for_update=False)
    dossier.check_applicant(caller, None)
    return dossier


def document_for_staff(uow, store: BlobStore, code: str, document_id: int, caller: Caller,
                       tree: AgencyTree) -> dict:
    """A document's bytes (base64) for staff of an agency involved in the dossier."""
    found = get_for_staff(uow, code, caller, tree).document(document_id)
    if found is None:
        raise NotFound(f"no document {document_id} in dossier {code}", field="document_id")
    return {"key": found.key, "filename": found.filename, "content_type": found.content_type,
            "sha256": found.sha256, "content_base64": base64.b64encode(store.get(found.sha256)).decode()}


def register_entry(uow, dossier: Dossier, tz: ZoneInfo) -> forms.RegisterEntry:
    """The dossier's line in its receiving agency's log book (form 01 states it)."""
    received = uow.dossiers.received_at_agency(dossier.agency_code, _year_start(dossier.received_at, tz),
                                               dossier.received_at + timedelta(microseconds=1))
    return forms.register(received, tz)[dossier.code]


def log_book(uow, agency_code: str, first: date, last: date, caller: Caller, tree: AgencyTree,
             tz: ZoneInfo) -> list[tuple[forms.RegisterEntry, Dossier]]:
    """Sổ theo dõi hồ sơ (form 07): the dossiers `agency_code` received from `first` to `last` (local
    days, both included), each with its register line, for its staff and those above it (`tree`)."""
    if not may_read(caller, {agency_code}, tree):
        raise Forbidden("the log book of another agency")
    start = datetime.combine(first, time(), tz)
    received = uow.dossiers.received_at_agency(agency_code, _year_start(start, tz),
                                               datetime.combine(last + timedelta(days=1), time(), tz))
    numbers = forms.register(received, tz)
    return [(numbers[code], _load(uow, code, for_update=False)) for code, at in received if at >= start]


def _year_start(moment: datetime, tz: ZoneInfo) -> datetime:
    """Midnight of 1 January of the local year of `moment`: each year opens a new book (quyển)."""
    return datetime(moment.astimezone(tz).year, 1, 1, tzinfo=tz)


def view(dossier: Dossier, tz: ZoneInfo, catalog: Catalog) -> dict:
    """The staff view of a dossier (GET /api/v1/dossiers/{code}), in the shape of the contract's
    DossierViewV1, built directly (a test holds it equal to the contract's dump)."""
    def at(value):
        return local_iso(value, tz)

    return {
        "code": dossier.code, "procedure_code": dossier.procedure_code,
        "procedure_version": dossier.procedure_version, "procedure_name": dossier.procedure_name,
        "field": dossier.field_code, "agency_code": dossier.agency_code, "channel": dossier.channel,
        "status": dossier.status, "status_code": dossier.status_code,
        "allowed_actions": allowed_actions(dossier.status),
        "applicant": {"type": dossier.applicant_type, "tax_code": dossier.applicant_tax_code,
                      "full_name": dossier.applicant_name, "id_number": dossier.applicant_id_number,
                      "phone": dossier.applicant_phone, "email": dossier.applicant_email,
                      "address": dossier.applicant_address},
        "form": dossier.form,
        "submitted_at": at(dossier.submitted_at), "received_at": at(dossier.received_at),
        "due_at": at(dossier.due_at), "refused_at": at(dossier.refused_at),
        "refusal_reason": dossier.refusal_reason, "result_ready_at": at(dossier.result_ready_at),
        "returned_at": at(dossier.returned_at), "return_method": dossier.return_method,
        "postal_services": list(dossier.postal_services),
        "paused_at": at(dossier.paused_at), "withdrawn_at": at(dossier.withdrawn_at),
        "withdrawal_reason": dossier.withdrawal_reason,
        "payment": ({"amount_vnd": dossier.payment_amount_vnd, "note": dossier.payment_note,
                     "paid_at": at(dossier.paid_at), "receipt_number": dossier.payment_receipt}
                    if dossier.payment_amount_vnd is not None else None),
        "result_outcome": dossier.result_outcome, "result_note": dossier.result_note,
        "stopped_at": at(dossier.stopped_at), "stop_reason": dossier.stop_reason,
        "proposed_due_at": at(dossier.proposed_due_at),
        "rating": dossier.rating, "rating_comment": dossier.rating_comment, "rated_at": at(dossier.rated_at),
        "supplements": [{"requested_at": at(r.requested_at), "requested_by": r.requested_by,
                         "agency_code": r.agency_code, "items": list(r.items), "note": r.note,
                         "due_before": at(r.due_before), "supplemented_at": at(r.supplemented_at),
                         "supplemented_by": r.supplemented_by, "due_after": at(r.due_after)}
                        for r in dossier.supplements],
        "reschedules": [{"rescheduled_at": at(r.rescheduled_at), "rescheduled_by": r.rescheduled_by,
                         "old_due_at": at(r.old_due_at), "new_due_at": at(r.new_due_at), "reason": r.reason,
                         "late_apology": r.late_apology} for r in dossier.reschedules],
        "documents": [documents.view(d, at) for d in dossier.documents],
        "documents_missing": documents.missing(
            dossier.documents, catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)),
        "agencies": sorted(dossier.agencies),
        "history": [{"at": at(h.at), "action": h.action, "status": h.status, "status_code": h.status_code,
                     "agency_code": h.agency_code, "actor": h.actor, "note": h.note} for h in dossier.history],
    }
