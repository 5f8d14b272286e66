"""Ký số kết quả: result documents signed (PAdES, pyHanko) with the issuing agency's certificate, and
the public verification of a signed document.

The port is `DocumentSigner.sign_pdf(pdf, credential, reason) -> signed pdf`. Its adapter here,
`CscSigner`, reaches a remote signing service (ký số từ xa) through the Cloud Signature Consortium API
v1 (`credentials/info`, `credentials/authorize`, `signatures/signHash`): the agency's (or the certifying
officer's) key never leaves
the provider; pyHanko builds the PAdES signature (ETSI.CAdES.detached, signing time, the certificate
chain embedded) around the raw signature the provider returns. Before a signed document is kept, its
signature is validated against the configured trust roots: a provider that answers with a signature
the agency's certificate does not verify, or with another agency's certificate, is refused.

`motcua/simulators/signing.py` is the local provider; `docs/connections.md` has the configuration table.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Protocol

import requests
from asn1crypto import algos, x509 as asn1_x509
from prometheus_client import CollectorRegistry, Counter, Histogram

from motcua.config import ROOT, env, is_production
from motcua.errors import ValidationFailed
from motcua.faults import TransientFailure
from motcua.keys import key_setting

log = logging.getLogger(__name__)

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
RSA_SHA256 = "1.2.840.113549.1.1.11"
TEST_CA_NAME = "Motcua TEST CA - NOT FOR PRODUCTION"  # motcua/simulators/pki.py's root
DEV_TRUST_ROOTS = ROOT / "deploy" / "dev" / "pki" / "test-ca.pem"
DEV_PIN = "123456"


class SigningUnavailable(TransientFailure):
    """The signing service is down, too slow, or answered something that is no valid signature: the
    document is not kept (never unsigned in its place); the officer tries again."""


class DocumentSigner(Protocol):
    def sign_pdf(self, pdf: bytes, credential: str, reason: str) -> bytes:
        """`pdf` signed with `credential`'s key: an agency's code (its results) or an officer's account
        (a certified copy, signed by the certifying officer)."""


@dataclass(frozen=True)
class SigningSettings:
    """The configuration table (docs/connections.md, "Digitally signed results")."""

    mode: str  # "off": step documents are kept as uploaded; "csc": signed through the CSC API
    url: str
    token: str
    pin: str
    timeout: float
    trust_roots: tuple[Path, ...]

    @classmethod
    def from_env(cls) -> "SigningSettings":
        mode = env("INTAKE_SIGNING", "off")
        if mode not in ("off", "csc"):
            raise SystemExit(f"INTAKE_SIGNING must be 'off' or 'csc', not {mode!r}")
        pin = env("INTAKE_SIGNING_PIN")
        if pin is None:
            if is_production() and mode == "csc":
                raise SystemExit("INTAKE_SIGNING_PIN must be set when MOTCUA_ENV=production and INTAKE_SIGNING=csc")
            pin = DEV_PIN
        roots = env("INTAKE_SIGNING_TRUST_ROOTS")
        if roots is None and is_production():
            raise SystemExit("INTAKE_SIGNING_TRUST_ROOTS must be set when MOTCUA_ENV=production (the national "
                             "root CA's and the licensed CAs' certificates, PEM, separated by ':')")
        return cls(mode=mode, url=env("INTAKE_SIGNING_URL", "http://127.0.0.1:8090/csc/v1").rstrip("/"),
                   token=key_setting("INTAKE_SIGNING_TOKEN").decode() if mode == "csc" else "",
                   pin=pin, timeout=float(env("INTAKE_SIGNING_TIMEOUT_SECONDS", "10")),
                   trust_roots=tuple(Path(p) for p in (roots or str(DEV_TRUST_ROOTS)).split(":") if p))


class SigningMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("motcua_signing_requests", "Documents sent to the signing service, by outcome",
                                ["outcome"], registry=registry)
        self.duration = Histogram("motcua_signing_duration_seconds", "Time to sign one document (remote calls "
                                  "included)", buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry)
        self.verifications = Counter("motcua_signature_verifications",
                                     "Signatures checked by the public verification, by result",
                                     ["result"], registry=registry)


def load_trust_roots(paths: tuple[Path, ...]) -> list[asn1_x509.Certificate]:
    """The trust anchors; production refuses the test CA (its keys are in the repository)."""
    from pyhanko.keys import load_certs_from_pemder
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise SystemExit(f"INTAKE_SIGNING_TRUST_ROOTS: no file {', '.join(missing)}")
    roots = [c for path in paths for c in load_certs_from_pemder([str(path)])]
    if not roots:
        raise SystemExit(f"no certificate in {':'.join(map(str, paths))} (INTAKE_SIGNING_TRUST_ROOTS)")
    if is_production() and any(_is_test_pki(root) for root in roots):
        raise SystemExit("INTAKE_SIGNING_TRUST_ROOTS holds Motcua's test CA, whose keys are public: refused "
                         "when MOTCUA_ENV=production")
    return roots


def _is_test_pki(certificate: asn1_x509.Certificate) -> bool:
    return TEST_CA_NAME in (certificate.subject.native.get("common_name"),
                            certificate.issuer.native.get("common_name"))


class CscClient:
    """The Cloud Signature Consortium API v1, as far as signing a hash needs it."""

    def __init__(self, settings: SigningSettings, session: requests.Session | None = None):
        self.settings = settings
        self.http = session or requests.Session()

    def call(self, operation: str, body: dict) -> dict:
        try:
            response = self.http.post(f"{self.settings.url}/{operation}", json=body, timeout=self.settings.timeout,
                                      headers={"Authorization": f"Bearer {self.settings.token}"})
        except requests.RequestException as exc:
            raise SigningUnavailable(f"signing service unreachable ({type(exc).__name__})") from None
        try:
            answer = response.json()
        except ValueError:
            raise SigningUnavailable(f"signing service answered no JSON (HTTP {response.status_code})") from None
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise SigningUnavailable(f"signing service refused {operation}: HTTP {response.status_code} {error}")
        return answer

    def certificates(self, credential_id: str) -> list[asn1_x509.Certificate]:
        answer = self.call("credentials/info", {"credentialID": credential_id, "certificates": "chain"})
        try:
            return [asn1_x509.Certificate.load(base64.b64decode(c)) for c in answer["cert"]["certificates"]]
        except (KeyError, TypeError, ValueError):
            raise SigningUnavailable("signing service answered a credential without certificates") from None

    def sign_hash(self, credential_id: str, digest: bytes, sign_algo: str) -> bytes:
        hashes = [base64.b64encode(digest).decode()]
        sad = self.call("credentials/authorize", {"credentialID": credential_id, "numSignatures": 1,
                                                  "hash": hashes, "PIN": self.settings.pin}).get("SAD")
        answer = self.call("signatures/signHash", {"credentialID": credential_id, "SAD": sad, "hash": hashes,
                                                   "hashAlgo": SHA256, "signAlgo": sign_algo})
        try:
            return base64.b64decode(answer["signatures"][0], validate=True)
        except (KeyError, IndexError, TypeError, ValueError):
            raise SigningUnavailable("signing service answered no signature") from None


def _remote_signer(client: CscClient, credential_id: str, chain: list[asn1_x509.Certificate]):
    """A pyHanko `Signer` whose raw signature is the provider's (`signatures/signHash`)."""
    from pyhanko.sign.signers import Signer
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    certificate = chain[0]
    ecdsa = certificate.public_key.algorithm == "ec"
    mechanism = "sha256_ecdsa" if ecdsa else "sha256_rsa"

    class RemoteSigner(Signer):
        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
            if dry_run:  # pyHanko sizes the signature's placeholder: the largest this key can give
                return bytes(72 if ecdsa else certificate.public_key.byte_size)
            return client.sign_hash(credential_id, hashlib.sha256(data).digest(),
                                    ECDSA_SHA256 if ecdsa else RSA_SHA256)

    return RemoteSigner(signing_cert=certificate, cert_registry=SimpleCertificateStore.from_certs(chain[1:]),
                        signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mechanism}))


class CscSigner:
    """The `DocumentSigner` adapter: PAdES baseline B-B through a CSC remote signing service. The
    credential of an agency is its code (mã định danh điện tử) at the provider."""

    def __init__(self, client: CscClient, trust_roots: list[asn1_x509.Certificate], metrics: SigningMetrics):
        self.client, self.trust_roots, self.metrics = client, trust_roots, metrics

    def sign_pdf(self, pdf: bytes, credential: str, reason: str) -> bytes:
        started = time.monotonic()
        try:
            signed = self._sign(pdf, credential, reason)
        except SigningUnavailable as exc:
            self.metrics.requests.labels(getattr(exc, "outcome", "unavailable")).inc()
            log.warning("document not signed: %s", exc)  # the credential may be an officer's name: not logged
            raise
        self.metrics.requests.labels("signed").inc()
        self.metrics.duration.observe(time.monotonic() - started)
        return signed

    def _sign(self, pdf: bytes, credential: str, reason: str) -> bytes:
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.pdf_utils.misc import PdfError
        from pyhanko.sign import fields, signers

        chain = self.client.certificates(credential)
        if _subject(chain[0], "user_id") != credential:
            raise _refused("the signing service answered another agency's or officer's certificate")
        if is_production() and any(_is_test_pki(c) for c in chain):
            raise _refused("the signing service answered a certificate of Motcua's test CA")
        meta = signers.PdfSignatureMetadata(field_name=f"KySo-{uuid.uuid4().hex[:12]}", md_algorithm="sha256",
                                            subfilter=fields.SigSeedSubFilter.PADES, reason=reason,
                                            name=_subject(chain[0], "common_name"))
        try:
            writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
            out = signers.PdfSigner(meta, signer=_remote_signer(self.client, credential, chain)).sign_pdf(
                writer, output=BytesIO())
        except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:  # the upload, not the provider
            raise ValidationFailed(f"not a PDF that can be signed ({type(exc).__name__})",
                                   field="documents") from None
        signed = out.getvalue()
        checked = verify_pdf(signed, self.trust_roots)["signatures"]
        if not checked or not checked[-1]["valid"]:
            raise _refused("the signing service's signature does not verify with the agency's certificate")
        return signed


def _refused(message: str) -> SigningUnavailable:
    exc = SigningUnavailable(message)
    exc.outcome = "refused"
    return exc


def _subject(certificate: asn1_x509.Certificate, attribute: str) -> str | None:
    value = certificate.subject.native.get(attribute)
    return value[0] if isinstance(value, list) else value


def verify_pdf(pdf: bytes, trust_roots: list[asn1_x509.Certificate]) -> dict:
    """Every signature of a PDF, checked: intact (the bytes it covers unchanged), valid (the signature
    verifies with the certificate it names), trusted (the certificate chains to a trust root), whether it
    covers the whole file, who signed (name, agency code, certificate serial and issuer) and when (the
    signing time the signer declared: no timestamp authority yet)."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        embedded = reader.embedded_signatures
    except Exception as exc:  # noqa: BLE001 - anyone's file: whatever the parser trips on is the file's fault
        raise ValidationFailed(f"not a readable PDF ({type(exc).__name__})", field="content_base64") from None
    context = ValidationContext(trust_roots=trust_roots, allow_fetching=False, revocation_mode="soft-fail")
    results = []
    for signature in embedded:
        try:
            status = validate_pdf_signature(signature, context)
        except Exception as exc:  # noqa: BLE001 - a malformed signature of anyone's file is its answer, not a 500
            results.append({"field": signature.field_name, "valid": False, "intact": False, "trusted": False,
                            "covers_whole_document": False, "problem": type(exc).__name__})
            continue
        certificate = status.signing_cert
        signed_at = status.signer_reported_dt
        results.append({
            "field": signature.field_name,
            "valid": bool(status.bottom_line and status.intact and status.valid),
            "intact": status.intact, "trusted": status.trusted,
            "covers_whole_document": status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
            "signer_name": _subject(certificate, "common_name"),
            "signer_id": _subject(certificate, "user_id"),  # the agency's code, or the officer's account
            "agency_code": _subject(certificate, "organizational_unit_name"),
            "certificate_serial": format(certificate.serial_number, "x"),
            "issuer": certificate.issuer.native.get("common_name"),
            "signed_at": signed_at.isoformat() if isinstance(signed_at, datetime) else None,
        })
    return {"signed": bool(results), "signatures": results}
