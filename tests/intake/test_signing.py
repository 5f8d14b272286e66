"""Ký số kết quả: the CSC adapter against the local signing service (motcua/simulators/signing.py), the
verification of what it signed, and every way the other side can fail (down, slow, garbage, a forged
signature, another agency's certificate). No broker, no database."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest
from fpdf import FPDF
from prometheus_client import CollectorRegistry

from motcua.errors import ValidationFailed
from motcua.faults import is_transient
from services.intake.signing import (DEV_TRUST_ROOTS, CscClient, CscSigner, SigningMetrics, SigningSettings,
                                     SigningUnavailable, load_trust_roots, verify_pdf)
from motcua.simulators.pki import make_test_pki
from motcua.simulators.signing import DEFAULT_PIN, DEFAULT_TOKEN, SigningSimulator

JUSTICE = "000.00.06.H56"  # Sở Tư pháp
COMMUNE = "000.20.01.H56"


def result_pdf(text: str = "Giay chung nhan") -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text=text)
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def simulator():
    running = SigningSimulator().start()
    yield running
    running.stop()


@pytest.fixture
def signer(simulator):
    simulator.forge = False
    simulator.faults.clear()
    settings = SigningSettings("csc", simulator.url, DEFAULT_TOKEN, DEFAULT_PIN, 2.0, (DEV_TRUST_ROOTS,))
    registry = CollectorRegistry()
    made = CscSigner(CscClient(settings), load_trust_roots(settings.trust_roots), SigningMetrics(registry))
    made.registry = registry
    return made


def count(signer, name, **labels):
    return signer.registry.get_sample_value(name, labels) or 0


def test_a_result_is_signed_by_its_agency_and_the_verification_says_who_and_when(signer, simulator):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    signed = signer.sign_pdf(result_pdf(), JUSTICE, "Kết quả giải quyết hồ sơ H56.01-261206-0001")
    assert signed.startswith(b"%PDF-") and b"/ETSI.CAdES.detached" in signed  # PAdES, not adbe.pkcs7
    answer = verify_pdf(signed, signer.trust_roots)
    [signature] = answer["signatures"]
    assert answer["signed"] and signature["valid"] and signature["intact"] and signature["trusted"]
    assert signature["covers_whole_document"]
    assert (signature["signer_name"], signature["agency_code"]) == ("Sở Tư pháp", JUSTICE)
    assert signature["issuer"] == "Motcua TEST CA - NOT FOR PRODUCTION"
    assert before <= datetime.fromisoformat(signature["signed_at"]) <= datetime.now(timezone.utc)
    assert count(signer, "motcua_signing_requests_total", outcome="signed") == 1
    assert count(signer, "motcua_signing_duration_seconds_count") == 1


def test_a_changed_byte_breaks_the_signature_and_an_unsigned_pdf_has_none(signer):
    signed = signer.sign_pdf(result_pdf(), JUSTICE, "Kết quả")
    at = signed.index(b"/Producer") + 12
    tampered = signed[:at] + bytes([signed[at] ^ 1]) + signed[at + 1:]
    [signature] = verify_pdf(tampered, signer.trust_roots)["signatures"]
    assert not signature["valid"] and not signature["intact"]
    assert verify_pdf(result_pdf(), signer.trust_roots) == {"signed": False, "signatures": []}


def test_a_signature_from_another_pki_is_intact_but_not_trusted(signer, tmp_path):
    other = make_test_pki(tmp_path, [{"code": JUSTICE, "name": "Sở Tư pháp"}])
    stranger = SigningSimulator(pki_dir=other).start()
    try:
        settings = SigningSettings("csc", stranger.url, DEFAULT_TOKEN, DEFAULT_PIN, 2.0, (DEV_TRUST_ROOTS,))
        # Trusting its own CA, the stranger's adapter signs; our roots do not trust what it signed.
        own = CscSigner(CscClient(settings), load_trust_roots((other / "test-ca.pem",)), signer.metrics)
        signed = own.sign_pdf(result_pdf(), JUSTICE, "Kết quả")
    finally:
        stranger.stop()
    [signature] = verify_pdf(signed, signer.trust_roots)["signatures"]
    assert signature["intact"] and not signature["trusted"] and not signature["valid"]


@pytest.mark.parametrize("fault", ["down", "slow", "garbage"])
def test_a_signing_service_down_slow_or_answering_garbage_fails_transiently(signer, simulator, fault):
    simulator.faults.play(fault, seconds=3.0)  # the adapter waits 2 s
    with pytest.raises(SigningUnavailable) as failure:
        signer.sign_pdf(result_pdf(), JUSTICE, "Kết quả")
    assert is_transient(failure.value)  # the gateway answers 503 with Retry-After: the officer tries again
    assert count(signer, "motcua_signing_requests_total", outcome="unavailable") == 1


def test_a_signing_service_nobody_listens_on_fails_transiently(signer):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    signer.client.settings = SigningSettings("csc", f"http://127.0.0.1:{port}/csc/v1", DEFAULT_TOKEN, DEFAULT_PIN,
                                             1.0, (DEV_TRUST_ROOTS,))
    with pytest.raises(SigningUnavailable, match="unreachable"):
        signer.sign_pdf(result_pdf(), JUSTICE, "Kết quả")


def test_a_forged_signature_is_refused_not_kept(signer, simulator):
    simulator.forge = True  # signs with a key that is not the certificate's
    with pytest.raises(SigningUnavailable, match="does not verify"):
        signer.sign_pdf(result_pdf(), JUSTICE, "Kết quả")
    assert count(signer, "motcua_signing_requests_total", outcome="refused") == 1
    assert count(signer, "motcua_signing_requests_total", outcome="signed") == 0


def test_another_agencys_certificate_is_refused(signer, simulator):
    own = simulator.credentials[JUSTICE]
    simulator.credentials[JUSTICE] = simulator.credentials[COMMUNE]
    try:
        with pytest.raises(SigningUnavailable, match="another agency"):
            signer.sign_pdf(result_pdf(), JUSTICE, "Kết quả")
    finally:
        simulator.credentials[JUSTICE] = own


def test_a_wrong_token_or_pin_is_refused_by_the_service(signer, simulator):
    for token, pin in (("wrong-token", DEFAULT_PIN), (DEFAULT_TOKEN, "000000")):
        signer.client.settings = SigningSettings("csc", simulator.url, token, pin, 2.0, (DEV_TRUST_ROOTS,))
        with pytest.raises(SigningUnavailable, match="HTTP (401|400)"):
            signer.sign_pdf(result_pdf(), JUSTICE, "Kết quả")
    assert simulator.credentials  # the simulator still serves the others


def test_what_is_no_pdf_is_refused_naming_the_field(signer):
    with pytest.raises(ValidationFailed) as refused:
        verify_pdf(b"%PDF-1.4 not really", signer.trust_roots)
    assert refused.value.field == "content_base64"


def test_production_refuses_the_test_ca_and_requires_its_settings(monkeypatch):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    with pytest.raises(SystemExit, match="test CA"):
        load_trust_roots((DEV_TRUST_ROOTS,))
    monkeypatch.setenv("INTAKE_SIGNING", "csc")
    with pytest.raises(SystemExit, match="INTAKE_SIGNING_PIN"):
        SigningSettings.from_env()
    monkeypatch.setenv("INTAKE_SIGNING_PIN", "482913")
    with pytest.raises(SystemExit, match="INTAKE_SIGNING_TRUST_ROOTS"):
        SigningSettings.from_env()


def test_the_shipped_test_pki_covers_every_agency_and_outlives_the_next_years():
    from cryptography import x509
    from motcua.catalog import load_agencies
    from motcua.config import catalog_dir
    directory = DEV_TRUST_ROOTS.parent / "agencies"
    for agency in load_agencies(catalog_dir()):
        certificate = x509.load_pem_x509_certificate((directory / f"{agency['code']}.pem").read_bytes())
        assert certificate.not_valid_after_utc > datetime.now(timezone.utc) + timedelta(days=365 * 5)


def test_a_pdf_that_cannot_be_signed_is_refused_naming_the_field(signer):
    with pytest.raises(ValidationFailed) as refused:
        signer.sign_pdf(b"%PDF-1.4 signed certificate\n%%EOF\n", JUSTICE, "Kết quả")
    assert refused.value.field == "documents"


def test_a_missing_trust_root_file_stops_the_service_naming_it(tmp_path):
    with pytest.raises(SystemExit, match="no file"):
        load_trust_roots((tmp_path / "roots.pem",))
