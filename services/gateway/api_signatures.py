"""HTTP API v1: the public verification of a signed result (tra cứu kết quả ký số), owned by intake
(its trust roots): anyone holding a result PDF learns who signed it, when, and whether it holds."""
from __future__ import annotations

import base64

from motcua.contracts.rpc import VerifySignatureV1
from motcua.contracts.views import SignatureVerificationViewV1
from motcua.errors import ValidationFailed, load_valid
from services.gateway import throttle
from services.gateway.http import read_json, route

MAX_SIGNED_BYTES = 5 * 1024 * 1024  # intake's limit for a document


def verification_body(request) -> dict:
    """JSON `{"content_base64"}`, or multipart/form-data with the PDF as a `document` file part (the
    portal's form)."""
    if request.mimetype != "multipart/form-data":
        return read_json(request, max_bytes=MAX_SIGNED_BYTES * 4 // 3 + 1024)
    request.max_content_length = MAX_SIGNED_BYTES + 64 * 1024
    upload = request.files.get("document")
    if upload is None:
        raise ValidationFailed("attach the signed PDF as the `document` part", field="document")
    return {"content_base64": base64.b64encode(upload.read()).decode()}


class SignatureApi:
    """Routes mixed into GatewayService, which provides the RPC proxies."""

    @route("POST", "/api/v1/signatures/verify", body=VerifySignatureV1, response=SignatureVerificationViewV1,
           auth="optional", multipart=True, errors=(429,))
    def verify_signature(self, request):
        """Kiểm tra chữ ký số: every signature of a PDF, whether it is intact and trusted, who signed, when.
        Anyone may check; without an account, `MOTCUA_SIGNATURE_CHECKS_PER_ADDRESS` checks an hour from one
        address (429 with Retry-After past it)."""
        body = load_valid(VerifySignatureV1, verification_body(request))
        self.count_anonymous(request, self.optional_caller_of(request)[0],
                             throttle.ThrottlePolicy.for_signature_checks(self.config), "signature checks")
        return self.intake.verify_signature(body)
