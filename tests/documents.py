"""The documents a test's online submission carries: one tiny, valid PDF for each mandatory document of
the procedure (thành phần hồ sơ bắt buộc), read from the catalogue, never listed by hand in a test.

An online submission lacking one is refused (services/intake/documents.py `require_complete`), so every
test, bench and chaos run that submits online takes its documents from here: `uploads` from a
procedure's document list as the catalogue or the API gives it (`GET /api/v1/procedures/{code}`, so a
client of another release gets that release's list), `required_uploads` from this repository's
catalogue by code, `form_files` for the portal's multipart form.
"""
from __future__ import annotations

import base64
from datetime import date
from functools import cache

from motcua.config import ROOT


def pdf(label: str) -> bytes:
    """A one-page blank PDF a browser opens, `label` in a comment (so each document hashes apart)."""
    safe = label.encode("ascii", "replace").replace(b"\n", b" ")
    return (b"%PDF-1.4\n% " + safe + b"\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def filename(key: str) -> str:
    """The file's name as a citizen's would read (to-khai.pdf), never the catalogue's key itself: pages
    must name documents by the catalogue's name, and a test looks for the key's absence."""
    return f"{key.replace('_', '-')}.pdf"


def mandatory(documents) -> list[dict]:
    """The mandatory ones of a procedure's documents (`required` defaults to true, as in the catalogue)."""
    return [dict(d) for d in documents if d.get("required", True)]


def uploads(documents) -> list[dict]:
    """The submission's `documents`: `{key, filename, content_base64}` for each mandatory document."""
    return [{"key": d["key"], "filename": filename(d["key"]),
             "content_base64": base64.b64encode(pdf(d["key"])).decode()} for d in mandatory(documents)]


def form_files(documents) -> dict:
    """The portal form's file fields (named by key) for each mandatory document, as `requests` posts them."""
    return {d["key"]: (filename(d["key"]), pdf(d["key"]), "application/pdf") for d in mandatory(documents)}


@cache
def _catalog():
    from services.intake.catalog import Catalog  # the repository's own catalogue, loaded once per run

    return Catalog.load(ROOT / "deploy" / "catalog")


def required_documents(procedure_code: str, on: date | None = None) -> list[dict]:
    """The mandatory documents of the version in force `on` (the latest by default) in deploy/catalog."""
    return mandatory(_catalog().procedure(procedure_code, on=on).documents)


def required_uploads(procedure_code: str, on: date | None = None) -> list[dict]:
    return uploads(required_documents(procedure_code, on))


def completed(procedure_code: str, given: list[dict], on: date | None = None) -> list[dict]:
    """`given` (the uploads a test is about), then a tiny PDF for each mandatory document they leave out."""
    keys = {upload["key"] for upload in given}
    return [*given, *(u for u in required_uploads(procedure_code, on) if u["key"] not in keys)]
