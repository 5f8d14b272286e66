"""Nội dung đang nhập giữ lại: a console form posted after the officer's session had ended is not lost.

Its input (never its CSRF token or idempotency key) is kept in the gateway's database, every gateway
instance's, bounded (`MAX_KEPT_CHARS` in all: what does not fit is named as left out, never dropped
silently; chosen files are never kept, and the page says so), for an hour, one per sign-in, under a
keyed hash of the ended sign-in's `motcua_sid` (which only the browser's cookies hold). After the new sign-in, the page the form was on
takes it (once) and shows every form of its own with what was typed (`Session.kept_for`).

Only a browser that had this sign-in's console page may leave input here: the form's CSRF token must
match its `motcua_sid` cookie (a stranger's POST keeps nothing). The expired token's officer, when its
signature holds, is the only one shown it after signing in again on the same browser.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote

from sqlalchemy import delete

from services.gateway.models import KeptInput

KEPT_FOR = timedelta(hours=1)
# All the fields of one form together, in characters: a long note (a few pages of text) fits; a
# megabyte pasted by mistake does not, and the page then says which input was left out.
MAX_KEPT_CHARS = 64_000
NOT_KEPT = ("csrf", "idempotency_key")  # a new rendering of the form makes its own
FILES = "files"  # `left_out`'s name for the chosen files, which are never kept


@dataclass(frozen=True)
class Kept:
    """A form's input shown again: the address it was posted to, its fields, and what was left out."""

    action: str
    fields: dict[str, str]
    left_out: tuple[str, ...] = field(default=())

    def for_action(self, action: str) -> dict[str, str]:
        """The fields if the form posting to `action` (as the page writes it, URL-quoted) is this one."""
        return self.fields if unquote(action) == self.action else {}


def bounded(fields: dict[str, str], limit: int = MAX_KEPT_CHARS) -> tuple[dict[str, str], list[str]]:
    """The fields to keep (in the form's order, while they fit in `limit` characters together) and the
    names of those left out. Empty fields and the form's own tokens are not input."""
    kept, left_out, used = {}, [], 0
    for name, value in fields.items():
        if not value or name in NOT_KEPT:
            continue
        if used + len(name) + len(value) > limit:
            left_out.append(name)
            continue
        kept[name] = value
        used += len(name) + len(value)
    return kept, left_out


def keep(uow, row_id: str, page: str, action: str, fields: dict[str, str], had_files: bool,
         username: str | None, now: datetime) -> bool:
    """Store a form's input for `page` under `row_id` (one per sign-in: a later form of the same ended
    session replaces it, so a browser holds one at most); False when nothing was typed. Expired rows
    are purged here."""
    kept, left_out = bounded(fields)
    if had_files:
        left_out.append(FILES)
    if not kept and not left_out:
        return False
    session = uow.session
    session.execute(delete(KeptInput).where((KeptInput.expires_at < now) | (KeptInput.id == row_id)))
    session.add(KeptInput(id=row_id, username=username, page=page[:2048], action=unquote(action)[:2048],
                          fields=kept, left_out=left_out, expires_at=now + KEPT_FOR))
    uow.commit()
    return True


def take(uow, row_id: str, page: str, username: str, now: datetime) -> Kept | None:
    """The input kept for `page` under `row_id` for this officer, removed as it is taken (shown once);
    None when there is none: another page's (left for it), expired, or another officer's."""
    session = uow.session
    row = session.get(KeptInput, row_id)
    if row is None or row.page != page or row.expires_at < now or row.username not in (None, username):
        return None
    kept = Kept(row.action, dict(row.fields), tuple(row.left_out or ()))
    session.delete(row)
    uow.commit()
    return kept
