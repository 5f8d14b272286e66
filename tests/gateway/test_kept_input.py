"""Nội dung đang nhập giữ lại (kept_input.py): a console form's input posted after the session ended is
kept bounded (what does not fit is named, never dropped silently), for its page and its officer only,
shown once; and the one helper every console form fills its fields with (`form_values`)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from motcua.db import UnitOfWork
from services.gateway import kept_input
from services.gateway.kept_input import FILES, MAX_KEPT_CHARS, Kept, bounded, keep, take
from services.gateway.models import Base, KeptInput
from services.gateway.pages_http import form_values
from tests.infra import migrated_sqlite_urls

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
REFUSE = "/can-bo/ho-so/000.20.02.H56-261206-0001/tu-choi"


def test_the_forms_tokens_and_empty_fields_are_not_input():
    kept, left_out = bounded({"csrf": "c", "idempotency_key": "k", "reason": "Thiếu tờ khai", "note": ""})
    assert (kept, left_out) == ({"reason": "Thiếu tờ khai"}, [])


def test_a_long_note_is_kept_whole_and_what_does_not_fit_is_named():
    note = "Ý kiến: " + "hồ sơ đủ điều kiện. " * 2000  # ~40,000 characters: far beyond a cookie's 4 KB
    kept, left_out = bounded({"note": note, "items": "x" * MAX_KEPT_CHARS, "amount_vnd": "150000"})
    assert kept == {"note": note, "amount_vnd": "150000"}
    assert left_out == ["items"]


@pytest.fixture
def uow(tmp_path):
    engine = create_engine(migrated_sqlite_urls(tmp_path)["gateway"])
    unit = UnitOfWork(Session(engine, expire_on_commit=False), "gateway", Base.metadata)
    yield unit
    unit.session.close()
    engine.dispose()


def test_kept_for_its_page_and_officer_once(uow):
    assert keep(uow, "row-1", "/can-bo", REFUSE, {"csrf": "c", "reason": "Thiếu tờ khai"}, False,
                "receptionist@X", T0)
    assert take(uow, "row-1", "/can-bo/viec", "receptionist@X", T0) is None  # another page: left for its own
    assert take(uow, "row-1", "/can-bo", "leader@X", T0) is None  # another officer on the same browser
    kept = take(uow, "row-1", "/can-bo", "receptionist@X", T0 + timedelta(minutes=5))
    assert kept == Kept(REFUSE, {"reason": "Thiếu tờ khai"}, ())
    assert take(uow, "row-1", "/can-bo", "receptionist@X", T0) is None  # shown once


def test_nothing_typed_keeps_nothing_but_chosen_files_are_said_to_be_lost(uow):
    assert not keep(uow, "row-1", "/can-bo", REFUSE, {"csrf": "c", "idempotency_key": "k"}, False, None, T0)
    assert keep(uow, "row-2", "/can-bo/danh-muc", "/can-bo/danh-muc", {"effective_from": "2027-01-01"}, True, None, T0)
    assert take(uow, "row-2", "/can-bo/danh-muc", "admin", T0).left_out == (FILES,)


def test_one_row_per_ended_sign_in_and_expired_rows_go(uow):
    keep(uow, "row-1", "/can-bo", REFUSE, {"reason": "một"}, False, None, T0)
    keep(uow, "row-1", "/can-bo", REFUSE, {"reason": "hai"}, False, None, T0)  # the same session's later form
    keep(uow, "row-2", "/can-bo", REFUSE, {"reason": "ba"}, False, None, T0 + kept_input.KEPT_FOR * 2)
    assert uow.session.scalars(select(KeptInput.id)).all() == ["row-2"]  # row-1 had expired: purged
    assert take(uow, "row-2", "/can-bo", "x", T0 + kept_input.KEPT_FOR * 4) is None  # expired itself


class Officer:
    def __init__(self, kept):
        self.kept = kept

    def kept_for(self, action):
        return self.kept.for_action(action) if self.kept else {}


def test_every_form_fills_in_what_was_typed_into_it_and_no_other():
    officer = Officer(Kept("/can-bo/ho-so/000.20.02.H56-261206-0001/tu-choi", {"reason": "Thiếu tờ khai"}))
    assert form_values(officer, REFUSE) == {"reason": "Thiếu tờ khai"}
    assert form_values(officer, "/can-bo/ho-so/000.20.02.H56-261206-0002/tu-choi") == {}  # another row's form
    assert form_values(officer, REFUSE.replace("tu-choi", "xac-nhan-nop-tien")) == {}  # another form
    assert form_values(officer, REFUSE, {"reason": "sửa lại"}) == {"reason": "sửa lại"}  # shown with errors
    assert form_values(None, REFUSE) == {}
    quoted = Kept("/can-bo/viec/a b/approve", {"note": "ok"})  # the page writes the address URL-quoted
    assert quoted.for_action("/can-bo/viec/a%20b/approve") == {"note": "ok"}
