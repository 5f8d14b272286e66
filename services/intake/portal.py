"""What the national portal (DVCQG) needs of a dossier that only intake holds: the applicant's identity,
the documents submitted, the fees and the result documents (hồ sơ đồng bộ lên Cổng DVCQG).

Reporting asks for it at the moment it pushes (RPC `national_portal_records`) and puts it straight into
the request to the portal: reporting's database never holds the identity. Plain Python: the rules of
what is given out, no nameko, no I/O.
"""
from __future__ import annotations

from datetime import datetime, timezone

from services.intake.catalog import Procedure
from services.intake.domain import PAYMENT_PLATFORM, STEP_DOCUMENT_PREFIX, Document, Dossier

MAX_CODES = 200  # one push batch of reporting at most (DVCQG_BATCH is 100 by default)


def record(dossier: Dossier, procedure: Procedure | None) -> dict:
    """The portal's part of one dossier. `procedure` the version the dossier was submitted under (its
    document names and fee), None when the catalogue no longer has it."""
    submitted = [d for d in dossier.documents if not d.key.startswith(STEP_DOCUMENT_PREFIX)]
    results = [d for d in dossier.documents if d.key.startswith(STEP_DOCUMENT_PREFIX)]
    return {
        "applicant": {"name": dossier.applicant_name, "id_number": dossier.applicant_id_number,
                      "type": dossier.applicant_type, "tax_code": dossier.applicant_tax_code,
                      "email": dossier.applicant_email, "phone": dossier.applicant_phone},
        "field_name": procedure.field_name if procedure else None,
        "documents": [_document(d, procedure, d.key) for d in submitted],
        "result_documents": [_document(d, procedure, d.key[len(STEP_DOCUMENT_PREFIX):]) for d in results],
        "fees": _fees(dossier, procedure),
        "flags": {"digitised": bool(submitted), "vneid_verified": dossier.vneid_verified,
                  "paid_online": any(entry.actor == PAYMENT_PLATFORM for entry in dossier.history)},
        "return_method": dossier.return_method,
    }


def _document(document: Document, procedure: Procedure | None, key: str) -> dict:
    listed = procedure.document(key) if procedure else None
    return {"id": document.id, "key": key, "name": listed["name"] if listed else document.filename,
            "filename": document.filename, "sha256": document.sha256, "uploaded_at": _iso(document.uploaded_at)}


def _fees(dossier: Dossier, procedure: Procedure | None) -> list[dict]:
    """The procedure's fee on the dossier's channel (lệ phí) and a step's financial obligation (nghĩa vụ tài
    chính, status 6), each with whether and how it was paid."""
    fees = []
    if procedure is not None and dossier.channel in procedure.channels and procedure.terms(dossier.channel).fee:
        paid = next((entry for entry in dossier.history if entry.action == "pay_fee"), None)  # paid online
        fees.append({"kind": "fee", "name": f"Lệ phí {procedure.name}"[:200],
                     "amount_vnd": procedure.terms(dossier.channel).fee, "paid_at": _iso(paid.at) if paid else None,
                     "receipt": paid.note.removeprefix("receipt ") if paid else None})
    if dossier.payment_amount_vnd:
        fees.append({"kind": "obligation", "name": dossier.payment_note or "Nghĩa vụ tài chính",
                     "amount_vnd": dossier.payment_amount_vnd, "paid_at": _iso(dossier.paid_at),
                     "receipt": dossier.payment_receipt})
    return fees


def _iso(value: datetime | None) -> str | None:
    """UTC ISO 8601: the same on every transport (RPC serializers differ on datetimes)."""
    return value.astimezone(timezone.utc).isoformat() if value is not None else None
