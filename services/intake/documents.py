"""Documents (thành phần hồ sơ) uploaded with a submission, a supplement or a step's completion: checked
against the procedure's list, limited in size and type, hashed (SHA-256). The checks are pure; `keep`
alone writes, the bytes to the blob store under their digest."""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from motcua.contracts.rpc import MAX_DOCUMENT_BYTES, document_type
from motcua.errors import ValidationFailed

if TYPE_CHECKING:
    from services.intake.blobs import BlobStore
    from services.intake.catalog import Procedure

MAX_DOCUMENTS = 20


@dataclass(frozen=True)
class Upload:
    """A file as received, decoded: `key` the procedure's document it claims to be."""

    key: str
    filename: str
    data: bytes

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def ref(self) -> dict:
        """What the dossier records and the bus carries (`DocumentRef`): never the bytes."""
        return {"key": self.key, "filename": self.filename[:200], "content_type": document_type(self.data),
                "size": len(self.data), "sha256": self.sha256}


def decode(uploads: list[dict]) -> list[Upload]:
    """Base64 uploads (`{key, filename, content_base64}`); field names are `documents.<index>.<what>`."""
    if len(uploads) > MAX_DOCUMENTS:
        raise ValidationFailed(f"at most {MAX_DOCUMENTS} documents", field="documents")
    decoded = []
    for index, upload in enumerate(uploads):
        try:
            data = base64.b64decode(upload["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed("not base64", field=f"documents.{index}.content_base64") from None
        decoded.append(Upload(upload["key"], upload["filename"], data))
    return decoded


def check(uploads: list[Upload], procedure: Procedure | None = None) -> list[dict]:
    """Every upload checked (one of `procedure`'s documents when given, its size, its type read from
    the content); their references, or the first fault naming its field."""
    if procedure is not None:
        for index, upload in enumerate(uploads):
            if procedure.document(upload.key) is None:
                known = ", ".join(d["key"] for d in procedure.documents)
                raise ValidationFailed(f"not a document of this procedure (one of: {known})",
                                       field=f"documents.{index}.key")
    for index, upload in enumerate(uploads):
        where = f"documents.{index}.content"
        if not upload.data:
            raise ValidationFailed("empty file", field=where)
        if len(upload.data) > MAX_DOCUMENT_BYTES:
            raise ValidationFailed(f"larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB", field=where)
        if document_type(upload.data) is None:
            raise ValidationFailed("only PDF, JPEG and PNG files are accepted", field=where)
    return [upload.ref() for upload in uploads]


def signed(uploads: list[Upload], sign: Callable[[bytes], bytes]) -> list[Upload]:
    """The uploads with every PDF replaced by its signed copy (`sign`); images are kept as they are
    (PAdES signs PDFs only)."""
    return [Upload(u.key, u.filename, sign(u.data)) if document_type(u.data) == "application/pdf" else u
            for u in uploads]


def keep(uploads: list[Upload], store: BlobStore) -> None:
    """The checked uploads' bytes into the blob store, under their SHA-256 (content-addressed: storing
    twice is harmless)."""
    for upload in uploads:
        store.put(upload.sha256, upload.data)


def missing(dossier_documents, procedure: Procedure) -> list[dict]:
    """Mandatory documents of the procedure version not uploaded yet (what the counter checks)."""
    present = {d.key for d in dossier_documents}
    return [{"key": d["key"], "name": d["name"]} for d in procedure.required_documents if d["key"] not in present]


def require_complete(uploads: list[Upload], procedure: Procedure) -> None:
    """Online, a dossier comes with every mandatory document of its procedure version (thành phần hồ sơ
    bắt buộc): refused otherwise, naming each missing one by key and catalogue name (`details.missing`).
    The counter is not held to it: its officer may receive and ask for a supplement (form 02)."""
    absent = missing(uploads, procedure)
    if absent:
        listed = "; ".join(f"{d['key']} ({d['name']})" for d in absent)
        raise ValidationFailed(f"required documents missing: {listed}", field="documents",
                               details={"missing": absent})


def view(document, at) -> dict:
    return {"id": document.id, "key": document.key, "filename": document.filename,
            "content_type": document.content_type, "size": document.size, "sha256": document.sha256,
            "uploaded_at": at(document.uploaded_at), "uploaded_by": document.uploaded_by}
