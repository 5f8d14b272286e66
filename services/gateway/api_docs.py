"""HTTP API v1: the API's own description (tài liệu API): the OpenAPI 3 document and its HTML page."""
from __future__ import annotations

from werkzeug.wrappers import Response

from services.gateway.http import route
from services.gateway.openapi import docs_page, openapi_document


class DocsApi:
    """Routes mixed into GatewayService; the document describes every route of the service class."""

    @route("GET", "/api/v1/openapi.json", auth="public")
    def openapi_json(self, request):
        """This API's OpenAPI 3 document (machine-readable)."""
        return openapi_document(type(self))

    @route("GET", "/api/v1/docs", response="text/html", auth="public")
    def api_docs(self, request):
        """This API's documentation as a plain HTML page (works offline)."""
        return Response(docs_page(openapi_document(type(self))), mimetype="text/html")
