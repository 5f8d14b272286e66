"""A remote signing service (ký số từ xa) speaking the Cloud Signature Consortium API v1
(`/csc/v1/...`, the format remote-signing providers and qualified trust services expose), holding one
credential per agency: the test PKI's keys (`motcua/simulators/pki.py`).

What it implements: `info`, `credentials/list`, `credentials/info` (certificate chain), `credentials/
authorize` (PIN → SAD, explicit authorisation per batch of hashes), `signatures/signHash` (ECDSA over a
SHA-256 hash). What it does not: OAuth2 (a static bearer token stands for the service account),
`credentials/sendOTP`, `signatures/timestamp`, asynchronous operations.

`forge = True` makes it sign with a key that is not the certificate's, as a compromised or confused
provider would; its `faults` (motcua/simulators/http.py) make it down, slow or answer garbage.

    python -m motcua.simulators.signing [PORT]      (default 8090; `make run` starts it when configured)
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from motcua.keys import development_value
from motcua.simulators.http import Answer, Request, Simulator, port_argument
from motcua.simulators.pki import DEFAULT_DIR

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
DEFAULT_PIN = "123456"
# intake's development value of INTAKE_SIGNING_TOKEN (derived from the name, as every development key)
DEFAULT_TOKEN = development_value("INTAKE_SIGNING_TOKEN")


class SigningSimulator(Simulator):
    def __init__(self, pki_dir: Path = DEFAULT_DIR, token: str = DEFAULT_TOKEN, pin: str = DEFAULT_PIN,
                 port: int = 0):
        self.token, self.pin, self.forge = token, pin, False
        self.ca_der = x509.load_pem_x509_certificate((pki_dir / "test-ca.pem").read_bytes()).public_bytes(
            serialization.Encoding.DER)
        self.credentials = {}
        for pem in sorted((pki_dir / "agencies").glob("*.pem")):
            certificate = x509.load_pem_x509_certificate(pem.read_bytes())
            key = serialization.load_pem_private_key(pem.with_suffix(".key").read_bytes(), None)
            self.credentials[pem.stem] = (certificate, key)
        self._sad_key = os.urandom(32)
        self.signed = 0  # hashes signed, for the tests' accounting
        super().__init__(port)

    @property
    def url(self) -> str:
        return self.http.url + "/csc/v1"

    # -- the API --------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        if request.method != "POST" or not request.path.startswith("/csc/v1/"):
            return Answer(404, _error("invalid_request", "unknown endpoint"))
        operation = request.path[len("/csc/v1/"):]
        if operation == "info":
            return Answer(200, {"specs": "1.0.4.0", "name": "Motcua signing simulator", "region": "VN", "lang": "vi-VN",
                         "authType": ["basic"], "methods": ["credentials/list", "credentials/info",
                                                            "credentials/authorize", "signatures/signHash"]})
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return Answer(401, _error("invalid_token", "the access token is not valid"))
        try:
            arguments = json.loads(request.raw or b"{}")
        except ValueError:
            return Answer(400, _error("invalid_request", "the body is no JSON"))
        answer = {"credentials/list": self._list, "credentials/info": self._info,
                  "credentials/authorize": self._authorize, "signatures/signHash": self._sign_hash}.get(operation)
        if answer is None:
            return Answer(404, _error("invalid_request", "unknown endpoint"))
        return Answer(*answer(arguments))

    def _credential(self, request: dict):
        return self.credentials.get(request.get("credentialID"))

    def _list(self, request):
        return 200, {"credentialIDs": sorted(self.credentials)}

    def _info(self, request):
        found = self._credential(request)
        if found is None:
            return 400, _error("invalid_request", "Invalid parameter credentialID")
        certificate, _ = found
        chain = [certificate.public_bytes(serialization.Encoding.DER)]
        if request.get("certificates", "single") == "chain":
            chain.append(self.ca_der)
        return 200, {
            "key": {"status": "enabled", "algo": [EC_PUBLIC_KEY], "len": 256, "curve": "1.2.840.10045.3.1.7"},
            "cert": {"status": "valid", "certificates": [base64.b64encode(c).decode() for c in chain],
                     "issuerDN": certificate.issuer.rfc4514_string(), "subjectDN": certificate.subject.rfc4514_string(),
                     "serialNumber": format(certificate.serial_number, "x"),
                     "validFrom": certificate.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
                     "validTo": certificate.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ")},
            "authMode": "explicit", "PIN": {"presence": "true", "format": "N"}, "multisign": 10}

    def _sad(self, credential_id: str, hashes_b64: list[str]) -> str:
        return hmac.new(self._sad_key, json.dumps([credential_id, sorted(hashes_b64)]).encode(),
                        hashlib.sha256).hexdigest()

    def _authorize(self, request):
        if self._credential(request) is None:
            return 400, _error("invalid_request", "Invalid parameter credentialID")
        if not hmac.compare_digest(str(request.get("PIN", "")), self.pin):
            return 400, _error("invalid_pin", "The PIN is invalid")
        hashes_b64 = request.get("hash") or []
        if len(hashes_b64) != request.get("numSignatures"):
            return 400, _error("invalid_request", "numSignatures does not match the hashes")
        return 200, {"SAD": self._sad(request["credentialID"], hashes_b64), "expiresIn": 300}

    def _sign_hash(self, request):
        found = self._credential(request)
        if found is None:
            return 400, _error("invalid_request", "Invalid parameter credentialID")
        hashes_b64 = request.get("hash") or []
        if not hmac.compare_digest(str(request.get("SAD", "")), self._sad(request["credentialID"], hashes_b64)):
            return 400, _error("invalid_request", "Invalid parameter SAD")
        if request.get("hashAlgo", SHA256) != SHA256 or request.get("signAlgo") != ECDSA_SHA256:
            return 400, _error("invalid_request", "Invalid parameter signAlgo")
        _, key = found
        if self.forge:
            key = ec.generate_private_key(ec.SECP256R1())
        try:
            digests = [base64.b64decode(h, validate=True) for h in hashes_b64]
        except ValueError:
            return 400, _error("invalid_request", "Invalid parameter hash")
        signatures = [key.sign(d, ec.ECDSA(utils.Prehashed(hashes.SHA256()))) for d in digests]
        self.signed += len(signatures)
        return 200, {"signatures": [base64.b64encode(s).decode() for s in signatures]}


def _error(error: str, description: str) -> dict:
    return {"error": error, "error_description": description}


if __name__ == "__main__":
    SigningSimulator(token=os.environ.get("INTAKE_SIGNING_TOKEN", DEFAULT_TOKEN),
                     pin=os.environ.get("INTAKE_SIGNING_PIN", DEFAULT_PIN),
                     port=port_argument(8090)).serve("CSC signing")
