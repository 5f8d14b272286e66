"""The test PKI (hạ tầng khoá công khai thử nghiệm): a test CA and one signing certificate per agency of the
catalogue, for the signing simulator and the tests. NOT for production: intake refuses at start any
trust root or signing certificate issued by it (`services.intake.signing.refuse_test_pki`).

    python -m motcua.simulators.pki [OUT_DIR]  (default deploy/dev/pki; what the repository ships)

Layout: `test-ca.pem` (the root, the dev trust anchor), `agencies/<credential>.pem` (the certificate)
and `agencies/<credential>.key` (its PKCS#8 key, unencrypted: a simulator's), where the credential is an
agency's code or a demo officer's account (`receptionist@<code>`, `specialist@<code>`). A certificate
names its agency's code as OU and its credential as UID. ECDSA P-256 keys, so the
whole set is made in well under a second.
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from motcua.config import ROOT

TEST_CA_NAME = "Motcua TEST CA - NOT FOR PRODUCTION"  # what refuse_test_pki recognises
DEFAULT_DIR = ROOT / "deploy" / "dev" / "pki"
VALID_DAYS = 3650
OFFICER_ROLES = ("receptionist", "specialist")  # the demo accounts who certify copies (chứng thực)


def _name(common_name: str, organization: str, agency_code: str | None = None,
          credential: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                  x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                  x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if agency_code:  # the agency's e-ID code (mã định danh điện tử), read back by the verification
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, agency_code))
    if credential:  # whose key: the agency's code, or an officer's account name
        attributes.append(x509.NameAttribute(NameOID.USER_ID, credential))
    return x509.Name(attributes)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def make_test_pki(out_dir: Path, agencies: list[dict], now: datetime | None = None,
                  officer_roles: tuple[str, ...] = ()) -> Path:
    """Writes the CA and one certificate + key per agency (`{"code", "name"}`) under `out_dir`, and one
    per officer `<role>@<agency code>` of `officer_roles` (a certifying officer's own signature)."""
    now = now or datetime.now(timezone.utc)
    start, end = now - timedelta(days=1), now + timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(TEST_CA_NAME, "Motcua test PKI")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    (out_dir / "agencies").mkdir(parents=True, exist_ok=True)
    (out_dir / "test-ca.pem").write_bytes(_pem(ca))
    for agency in agencies:
        holders = [(agency["code"], agency["name"])]
        holders += [(f"{role}@{agency['code']}", f"{role}@{agency['code']}") for role in officer_roles]
        for credential, common_name in holders:
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = (
                x509.CertificateBuilder()
                .subject_name(_name(common_name, agency["name"], agency["code"], credential)).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                # digitalSignature + nonRepudiation (content commitment): a document signature
                .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
            (out_dir / "agencies" / f"{credential}.pem").write_bytes(_pem(certificate))
            (out_dir / "agencies" / f"{credential}.key").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return out_dir


def main(argv: list[str]) -> None:
    from motcua.catalog import load_agencies
    from motcua.config import catalog_dir
    out_dir = Path(argv[0]) if argv else DEFAULT_DIR
    agencies = load_agencies(catalog_dir())
    make_test_pki(out_dir, agencies, officer_roles=OFFICER_ROLES)
    print(f"test PKI for {len(agencies)} agencies and their {', '.join(OFFICER_ROLES)} written to {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
