"""The agency scope (motcua.access): own agency for every staff role, the sub-tree for leaders and
agency admins, everything for the platform admin; account management for agency admins."""
from __future__ import annotations

import inspect

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select
from sqlalchemy.orm import Session

from motcua import migrate
from motcua.access import AgencyTree, audit_refusals, denial, may_manage, may_read, scope_of
from motcua.catalog import load_agencies
from motcua.config import catalog_dir
from motcua.contracts import make_event, parse_event
from motcua.db import UnitOfWork, make_engine
from motcua.identity import Caller
from services.gateway.audit import record_denied_by_service
from services.gateway.models import AuditEntry, Base
from services.gateway.service import GatewayService

TREE = AgencyTree({"P": None, "D": "P", "U": "D", "C": "P", "X": None})


def staff(role: str, agency: str) -> Caller:
    return Caller(f"{role}@{agency}", agency, (role,))


def test_the_tree_knows_sub_agencies_at_any_depth():
    assert TREE.subtree("P") == {"P", "D", "U", "C"}
    assert TREE.subtree("D") == {"D", "U"}
    assert TREE.ancestors("U") == ["D", "P"]
    assert TREE.within("U", "P") and not TREE.within("P", "U") and not TREE.within("X", "P")


def test_a_cycle_in_the_data_does_not_loop():
    looped = AgencyTree({"A": "B", "B": "A"})
    assert looped.ancestors("A") == ["B"]
    assert looped.subtree("A") == {"A", "B"}


def test_who_may_read_what():
    assert may_read(staff("specialist", "U"), ["U"], TREE)
    assert not may_read(staff("specialist", "D"), ["U"], TREE)  # a specialist: own agency only
    assert may_read(staff("leader", "D"), ["U"], TREE) and may_read(staff("agency_admin", "P"), ["U"], TREE)
    assert not may_read(staff("leader", "U"), ["D"], TREE)  # never upwards
    assert not may_read(staff("leader", "C"), ["U"], TREE)  # nor sideways
    assert may_read(Caller("admin", None, ("admin",)), ["X"], TREE)
    assert not may_read(Caller("citizen", None, ()), ["U"], TREE)
    assert scope_of(Caller("admin", None, ("admin",)), TREE) is None


def test_who_may_manage_accounts():
    assert may_manage(staff("agency_admin", "D"), "U", TREE)
    assert not may_manage(staff("agency_admin", "D"), "C", TREE)
    assert not may_manage(staff("leader", "D"), "D", TREE)
    assert may_manage(Caller("admin", None, ("admin",)), None, TREE)
    assert not may_manage(staff("agency_admin", "D"), None, TREE)


def test_the_shipped_catalogue_makes_a_tree():
    tree = AgencyTree.from_agencies(load_agencies(catalog_dir()))
    assert "000.12.01.H56" in tree.subtree("000.00.12.H56")  # the land office under its department
    assert "000.20.01.H56" in tree.subtree("000.00.00.H56")  # the commune under the province


def test_a_denial_carries_who_and_what_but_no_personal_data():
    data = denial("intake.get_dossier", "x" * 500, staff("specialist", "U"), dossier_code="U-261201-0001")
    assert set(data) == {"action", "reason", "denied_at", "username", "agency_code", "roles", "claimed_username",
                         "dossier_code", "task_id"}
    assert len(data["reason"]) == 200 and data["claimed_username"] is None
    assert denial("intake.get_dossier", "invalid token", claimed_username="admin")["claimed_username"] == "admin"


def test_audit_refusals_keeps_the_methods_signature_for_nameko():
    class Service:
        @audit_refusals
        def get_dossier(self, code, caller_token):
            return code

    assert str(inspect.signature(Service.get_dossier)) == "(self, code, caller_token)"
    inspect.getcallargs(Service.get_dossier, None, "C-1", caller_token="t")
    with pytest.raises(TypeError):  # nameko answers IncorrectSignature instead of running the worker
        inspect.getcallargs(Service.get_dossier, None, "C-1", "t", "one too many")


def test_a_refusal_is_recorded_once_however_often_it_is_delivered(tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade("gateway", url)
    engine = make_engine(url)
    event = parse_event(make_event("intake", "access_denied", denial(
        "intake.get_dossier", "this dossier is not handled by your agency", staff("specialist", "U"),
        dossier_code="C-261201-0001")))
    for _ in range(2):
        uow = UnitOfWork(Session(engine), "gateway", Base.metadata)
        uow.apply_once(event, "gateway.on_intake_access_denied", record_denied_by_service)
        uow.close()
    with Session(engine) as session:
        [entry] = session.scalars(select(AuditEntry)).all()
    engine.dispose()
    assert (entry.username, entry.agency_code, entry.source, entry.outcome, entry.action, entry.dossier_code) == (
        "specialist@U", "U", "intake", "denied", "intake.get_dossier", "C-261201-0001")


def test_the_gateway_audits_the_refusals_of_reporting_too(tmp_path):
    """Reporting checks its callers now (a drill-down lists dossiers); its `access_denied` events are
    consumed by the gateway's handler and land in the audit log like intake's and workflow's."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade("gateway", url)
    engine = make_engine(url)
    uow = UnitOfWork(Session(engine), "gateway", Base.metadata)
    gateway = worker_factory(GatewayService, db=uow)
    refused = denial("reporting.report_drill_down", "requires role receptionist", Caller("citizen", None, ()))
    gateway.on_reporting_access_denied(parse_event(make_event("reporting", "access_denied", refused)))
    uow.close()
    with Session(engine) as session:
        [entry] = session.scalars(select(AuditEntry)).all()
    engine.dispose()
    assert (entry.source, entry.action, entry.outcome, entry.username) == (
        "reporting", "reporting.report_drill_down", "denied", "citizen")
    subscribed = {(handler.source_service, handler.event_type)
                  for handler in GatewayService.on_reporting_access_denied.nameko_entrypoints}
    assert subscribed == {("reporting", "access_denied")}
