"""The server-rendered pages: the citizen portal, the staff console, the leaders' dashboard, and their
stylesheet. Each area is a mixin of its own module; all of them call the same RPCs as the API."""
from __future__ import annotations

from pathlib import Path

from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from services.gateway.pages_console import ConsolePages
from services.gateway.pages_dashboard import DashboardPages
from services.gateway.pages_http import page
from services.gateway.pages_payment import PaymentPages
from services.gateway.pages_portal import PortalPages

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".js": "text/javascript"}
STATIC_FILES = {path.name: path for path in STATIC.iterdir() if path.suffix in STATIC_TYPES}


class Pages(PortalPages, PaymentPages, ConsolePages, DashboardPages):
    """Pages mixed into GatewayService, which provides the RPC proxies, config and database."""

    @page("GET", "/static/<name>")
    def static_file(self, request, name):
        path = STATIC_FILES.get(name)
        if path is None:
            raise NotFound()
        return Response(path.read_bytes(), mimetype=STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})  # the same for everyone: kept

    def _agencies(self) -> dict[str, str]:
        """Agency code → name, for every page that names agencies."""
        return {agency["code"]: agency["name"] for agency in self.intake.list_agencies()}
