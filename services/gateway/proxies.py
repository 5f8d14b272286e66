"""Who is asking and over what, behind a reverse proxy: the client's address and scheme.

A TLS-terminating proxy (nginx, a load balancer) connects to the gateway itself, so the connection's
address is the proxy's and its scheme plain HTTP. The proxy says who it serves in `X-Forwarded-For`
(each proxy appends the address it was connected from) and `X-Forwarded-Proto`; anyone can send
those headers too, so they are believed only from the proxies named in `MOTCUA_TRUSTED_PROXIES`
(addresses or networks, comma-separated). The client is then the right-most address of the chain
that is not a trusted proxy: what lies left of it was written by the client and proves nothing.
Throttles (chống dò), the audit log and secure cookies rely on what this decides.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SETTING = "MOTCUA_TRUSTED_PROXIES"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(value: str | None) -> tuple[Network, ...]:
    """The setting's networks; a value that is not one stops the process naming the setting."""
    networks = []
    for item in (value or "").split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise SystemExit(f"{SETTING}: {item.strip()!r} is not an IP address or network") from None
    return tuple(networks)


@dataclass(frozen=True)
class Proxies:
    trusted: tuple[Network, ...]

    def trusts(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def resolve(self, environ: dict) -> None:
        """Set the WSGI environ's REMOTE_ADDR and wsgi.url_scheme to the client's, when the connection
        comes from a trusted proxy; otherwise the forwarding headers are left unread."""
        if not self.trusts(environ.get("REMOTE_ADDR")):
            return
        chain = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        for hop in reversed(chain):
            if not _is_address(hop):
                break  # not what a proxy writes: the client's own text, believe nothing further left
            environ["REMOTE_ADDR"] = hop
            if not self.trusts(hop):
                break
        # The proxy nearest the gateway sets the scheme last (the right-most value).
        scheme = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
        if scheme in ("http", "https"):
            environ["wsgi.url_scheme"] = scheme


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
