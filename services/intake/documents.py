"""Documents (thành phần hồ sơ) uploaded with a submission or a supplement: checked against the
procedure's list, limited in size and type, hashed (SHA-256) and kept in the blob store."""
from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime

from motcua.errors import ValidationFailed
from services.intake.blobs import BlobStore
from services.intake.catalog import Procedure
from services.intake.models import Dossier, DossierDocument

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_DOCUMENTS = 20
# The type is read from the content, never trusted from the client.
SIGNATURES = {b"%PDF-": "application/pdf", b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def content_type(data: bytes) -> str | None:
    return next((kind for magic, kind in SIGNATURES.items() if data.startswith(magic)), None)


def decode(uploads: list[dict]) -> list[dict]:
    """Base64 uploads (`{key, filename, content_base64}`) as bytes, each checked; field names
    are `documents.<index>.<what>`."""
    if len(uploads) > MAX_DOCUMENTS:
        raise ValidationFailed(f"at most {MAX_DOCUMENTS} documents", field="documents")
    decoded = []
    for index, upload in enumerate(uploads):
        try:
            data = base64.b64decode(upload["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed("not base64", field=f"documents.{index}.content_base64") from None
        decoded.append({"key": upload["key"], "filename": upload["filename"], "data": data})
    return decoded


def attach(dossier: Dossier, procedure: Procedure, uploads: list[dict], store: BlobStore, actor: str,
           now: datetime) -> None:
    """Check every upload (`{key, filename, data}`) against the procedure version's documents, then
    store it and record it on the dossier. Nothing is recorded unless all pass."""
    for index, upload in enumerate(uploads):
        if procedure.document(upload["key"]) is None:
            known = ", ".join(d["key"] for d in procedure.documents)
            raise ValidationFailed(f"not a document of this procedure (one of: {known})",
                                   field=f"documents.{index}.key")
    for ref in store_checked(uploads, store):
        record(dossier, ref, actor, now)


def store_checked(uploads: list[dict], store: BlobStore) -> list[dict]:
    """Check every upload's size and type, then keep the bytes under their SHA-256 (content-addressed:
    storing twice is harmless); the references `{key, filename, content_type, size, sha256}`."""
    checked = []
    for index, upload in enumerate(uploads):
        where = f"documents.{index}"
        data = upload["data"]
        if not data:
            raise ValidationFailed("empty file", field=f"{where}.content")
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ValidationFailed(f"larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB", field=f"{where}.content")
        kind = content_type(data)
        if kind is None:
            raise ValidationFailed("only PDF, JPEG and PNG files are accepted", field=f"{where}.content")
        checked.append((upload, data, kind, hashlib.sha256(data).hexdigest()))
    refs = []
    for upload, data, kind, digest in checked:
        store.put(digest, data)
        refs.append({"key": upload["key"], "filename": upload["filename"][:200], "content_type": kind,
                     "size": len(data), "sha256": digest})
    return refs


def record(dossier: Dossier, ref: dict, actor: str, at: datetime) -> None:
    """A stored document on the dossier's list, once (a redelivered event records nothing more)."""
    if any(d.sha256 == ref["sha256"] and d.doc_key == ref["key"] for d in dossier.documents):
        return
    dossier.documents.append(DossierDocument(
        doc_key=ref["key"], filename=ref["filename"], content_type=ref["content_type"], size=ref["size"],
        sha256=ref["sha256"], uploaded_at=at, uploaded_by=actor))


def missing(dossier: Dossier, procedure: Procedure) -> list[dict]:
    """Mandatory documents of the procedure version not uploaded yet (what the counter checks)."""
    present = {d.doc_key for d in dossier.documents}
    return [{"key": d["key"], "name": d["name"]} for d in procedure.required_documents if d["key"] not in present]


def view(document: DossierDocument, at) -> dict:
    return {"id": document.id, "key": document.doc_key, "filename": document.filename,
            "content_type": document.content_type, "size": document.size, "sha256": document.sha256,
            "uploaded_at": at(document.uploaded_at), "uploaded_by": document.uploaded_by}
