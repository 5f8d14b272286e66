"""ID numbers and phones encrypted at rest (sealing.py): the stored row holds neither in clear, search
(through the blind index) and the staff view still work, a value moved to another row does not open,
the migration encrypts the rows it finds, a stored command result is sealed too, and `motcua data-keys
rewrap` rotates the key-encryption key."""
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.orm import Session

from motcua import cli, migrate
from motcua.db import make_engine
from motcua.keys import new_key
from services.intake import dossiers, sealing
from services.intake.models import Base, data_keys
from services.intake.repository import DossierRepository, IntakeUnitOfWork
from tests.intake.test_dossiers import APPLICANT, MONDAY_9AM, RECEPTIONIST, submission, submit
from tests.intake.test_idempotent_commands import submit_once
from tests.intake.test_search import LATER, find

PERSONAL = (APPLICANT["id_number"], APPLICANT["phone"], APPLICANT["phone"][1:])  # the phone with or without 0


def stored_rows(engine) -> list[dict]:
    """Every column of every dossier, read with plain SQL (as a backup or an insider would)."""
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text("SELECT * FROM dossiers"))]


def in_clear(rows: list[dict]) -> list[str]:
    return [f"{row['code']}.{column}" for row in rows for column, value in row.items()
            if any(secret in str(value) for secret in PERSONAL)]


def fresh(engine, keys=None) -> IntakeUnitOfWork:
    unit = IntakeUnitOfWork(Session(engine, expire_on_commit=False), "intake", Base.metadata)
    if keys is not None:  # the repository under other data keys than the environment's
        vars(unit)["dossiers"] = DossierRepository(unit.session, keys)
    return unit


def test_the_stored_row_holds_no_id_number_or_phone_in_clear(uow, policy, engine):
    dossier = submit(uow, policy)
    rows = stored_rows(engine)
    assert len(rows) == 1 and in_clear(rows) == []
    assert rows[0]["applicant_id_number"].startswith("1.") and rows[0]["applicant_phone"].startswith("1.")
    again = fresh(engine).dossiers.get(dossier.code, for_update=False)
    assert (again.applicant_id_number, again.applicant_phone) == (APPLICANT["id_number"], APPLICANT["phone"])


def test_search_and_the_staff_view_still_work(uow, policy, engine):
    dossier = submit(uow, policy)
    assert find(uow, policy, id_number=APPLICANT["id_number"])[0] == [dossier.code]
    assert find(uow, policy, phone="+84" + APPLICANT["phone"][1:])[0] == [dossier.code]
    assert find(uow, policy, id_number="001203004999")[0] == []
    uow.session.rollback()  # the searches' reads end: the staff view reads on its own
    view = dossiers.view(dossiers.get_for_staff(fresh(engine), dossier.code, RECEPTIONIST, policy.tree),
                         policy.calendar.tz, policy.catalog)
    assert (view["applicant"]["id_number"], view["applicant"]["phone"]) == (APPLICANT["id_number"], APPLICANT["phone"])
    # the applicant's own proof (tracking key and ID number) is checked against the opened values
    dossiers.withdraw(uow, dossier.code, "nộp nhầm", None, dossiers.ApplicantProof(
        APPLICANT["phone"][-4:], APPLICANT["id_number"]), LATER)


def test_a_value_moved_to_another_row_does_not_open(uow, policy, engine):
    first, second = submit(uow, policy), submit(uow, policy)
    with engine.begin() as connection:
        connection.execute(text("UPDATE dossiers SET applicant_id_number = "
                                "(SELECT applicant_id_number FROM dossiers WHERE code = :first) WHERE code = :second"),
                           {"first": first.code, "second": second.code})
    with pytest.raises(RuntimeError, match=f"dossier {second.code}: applicant_id_number does not open"):
        fresh(engine).dossiers.get(second.code, for_update=False)


def test_the_migration_encrypts_the_rows_it_finds(empty_database):
    url = empty_database("intake")
    command.upgrade(migrate.alembic_config("intake", url), "c3d1e5f7a9b2")  # before encryption
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO dossiers (code, version, procedure_code, procedure_version, procedure_name, field_code,"
            " agency_code, channel, status, status_code, applicant_name, applicant_id_number, applicant_phone,"
            " applicant_type, form, submitted_at, history, supplements, reschedules, documents) VALUES"
            " ('OLD-1', 0, '1.012786', 1, 'p', 'f', 'a', 'online', 'submitted', 1, 'Nguyễn Văn An', :id, :phone,"
            " 'individual', '{}', :at, '[]', '[]', '[]', '[]')"),
            {"id": APPLICANT["id_number"], "phone": APPLICANT["phone"], "at": MONDAY_9AM})
    assert in_clear(stored_rows(engine)) == ["OLD-1.applicant_id_number", "OLD-1.applicant_phone"]
    migrate.upgrade("intake", url)
    assert in_clear(stored_rows(engine)) == []
    again = fresh(engine).dossiers.get("OLD-1", for_update=False)
    assert (again.applicant_id_number, again.applicant_phone) == (APPLICANT["id_number"], APPLICANT["phone"])
    command.downgrade(migrate.alembic_config("intake", url), "c3d1e5f7a9b2")  # and back, in clear
    assert in_clear(stored_rows(engine)) == ["OLD-1.applicant_id_number", "OLD-1.applicant_phone"]
    engine.dispose()


def test_rotating_the_key_encryption_key_rewraps_the_data_keys_only(uow, policy, engine, monkeypatch, capsys):
    dossier = submit(uow, policy, now=MONDAY_9AM)
    rows_before = stored_rows(engine)
    new = new_key()
    monkeypatch.setenv("INTAKE_DB_URL", str(engine.url))
    monkeypatch.setenv(sealing.NEW_SETTING, new)
    assert cli.main(["data-keys", "rewrap"]) == 0
    assert "re-wrapped 1 data key(s)" in capsys.readouterr().out
    assert stored_rows(engine) == rows_before  # the rows are not touched
    new_keys = sealing.DataKeys(sealing.key_encryption_key(new.encode()), data_keys)
    again = fresh(engine, new_keys).dossiers.get(dossier.code, for_update=False)
    assert again.applicant_id_number == APPLICANT["id_number"]
    with pytest.raises(sealing.WrongKey, match="INTAKE_DATA_KEY is not the key"):
        sealing.DataKeys(sealing.environment_kek(), data_keys).keys(fresh(engine).session)
    cli.main(["data-keys", "rewrap"])  # a second run: everything is under the new key already
    assert "re-wrapped 0 data key(s)" in capsys.readouterr().out


def test_production_refuses_a_missing_data_key(monkeypatch):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.delenv(sealing.SETTING, raising=False)
    sealing.environment_kek.cache_clear()
    try:
        with pytest.raises(SystemExit, match="INTAKE_DATA_KEY must be set"):
            sealing.environment_kek()
        monkeypatch.setenv(sealing.NEW_SETTING, "short")
        with pytest.raises(SystemExit, match="INTAKE_DATA_KEY_NEW is weaker than 256 random bits"):
            sealing.new_environment_kek()
    finally:
        sealing.environment_kek.cache_clear()


def test_a_stored_command_result_holds_no_personal_data_in_clear(uow, policy, engine):
    first = submit_once(uow, policy, "sealed-1", submission())
    shown = first["applicant"]
    assert (shown["id_number"], shown["phone"]) == (APPLICANT["id_number"], APPLICANT["phone"])
    with engine.connect() as connection:
        [stored] = connection.execute(text("SELECT result FROM command_results")).scalars().all()
    assert first["code"] in stored  # the view is there, for a repeat…
    assert not any(secret in stored for secret in (*PERSONAL, APPLICANT["full_name"], APPLICANT["address"]))
    assert submit_once(uow, policy, "sealed-1", submission()) == first  # …which answers it in clear
