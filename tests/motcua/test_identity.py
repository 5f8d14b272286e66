"""Who may do what: roles per agency; an agency's system only where a check lets it in."""
import pytest

from motcua.errors import Forbidden
from motcua.identity import Caller

TAX = "000.00.18.H56"


def test_a_system_account_takes_its_agencys_tasks_and_nothing_else():
    system = Caller(f"system@{TAX}", TAX, ("system",))
    system.require("leader", agency_code=TAX, allow_system=True)  # its agency's task, any step role
    with pytest.raises(Forbidden):
        system.require("leader", agency_code="000.20.01.H56", allow_system=True)  # another agency's
    with pytest.raises(Forbidden):
        system.require("receptionist", agency_code=TAX)  # counter decisions are not a system's


def test_roles_are_checked_per_agency_and_admins_pass():
    receptionist = Caller("receptionist@X", "000.20.01.H56", ("receptionist",))
    receptionist.require("receptionist", agency_code="000.20.01.H56")
    with pytest.raises(Forbidden):
        receptionist.require("leader", agency_code="000.20.01.H56")
    with pytest.raises(Forbidden):
        receptionist.require("receptionist", agency_code=TAX)
    Caller("admin", None, ("admin",)).require("leader", agency_code=TAX)


def test_a_verified_token_is_kept_for_its_lifetime_only(monkeypatch):
    """verify_token keeps what it verified (by key and token) until the token expires, then refuses it
    as PyJWT would; another key verifies afresh."""
    import time
    from datetime import timedelta

    from motcua.errors import Unauthorized
    from motcua.identity import issue_token, verify_token
    from motcua.keys import new_token_pair

    signing, verifying = new_token_pair()
    caller = Caller("leader@X", TAX, ("leader",))
    token = issue_token(caller, signing, timedelta(minutes=5))
    assert verify_token(token, verifying) == caller
    assert verify_token(token, verifying) is verify_token(token, verifying)
    with pytest.raises(Unauthorized, match="invalid"):
        verify_token(token, new_token_pair()[1])
    later = time.time() + 301
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(token, verifying)
