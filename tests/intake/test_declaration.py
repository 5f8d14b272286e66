"""The applicant's declaration (tờ khai, a dossier's `form`) is checked against its procedure's fields in
the catalogue: unknown fields refused, each bounded, the whole bounded (issue 12: a 20 MB free-form
`form` travelled the bus)."""
from __future__ import annotations

import json

import pytest
from marshmallow import ValidationError

from motcua.config import catalog_dir
from motcua.contracts.rpc import MAX_DECLARATION_BYTES, SubmitDossierV1
from motcua.errors import ValidationFailed, load_valid
from services.intake import declaration
from services.intake.catalog import Catalog
from services.workflow.processes import load_processes
from workers.tax_office import TAX_OFFICE

LAND, NEWBORN, BIRTH = "1.013978", "2.000986", "1.001193"
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321"}


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load(catalog_dir())


def refused(procedure, form) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as error:
        procedure.check_declaration(form)
    return error.value


def test_a_declaration_is_read_by_its_procedures_fields(catalog):
    land = catalog.procedure(LAND)
    assert land.check_declaration({"land_area_m2": "120.5", "land_price_vnd_per_m2": 10_000_000,
                                   "fee_exempt": False}) == {
        "land_area_m2": 120.5, "land_price_vnd_per_m2": 10_000_000, "fee_exempt": False}
    assert land.check_declaration({}) == {}  # no field of it is required
    assert catalog.procedure(BIRTH).check_declaration({}) == {}
    assert [f["key"] for f in land.detail()["form"]] == ["land_area_m2", "land_price_vnd_per_m2", "fee_exempt"]


@pytest.mark.parametrize("code, form, field", [
    (BIRTH, {"notes": "anything"}, "form.notes"),  # a procedure without fields takes nothing
    (LAND, {"land_area_m2": 1, "blob": "x" * 100}, "form.blob"),
    (LAND, {"land_area_m2": -5}, "form.land_area_m2"),
    (LAND, {"land_price_vnd_per_m2": 1.5}, "form.land_price_vnd_per_m2"),
    (LAND, {"fee_exempt": "yes"}, "form.fee_exempt"),
    (NEWBORN, {"health_insurance": "false"}, "form.health_insurance"),
])
def test_unknown_fields_and_bad_values_are_refused_naming_the_field(catalog, code, form, field):
    error = refused(catalog.procedure(code), form)
    assert error.field == field
    assert "x" * 100 not in json.dumps(error.details, ensure_ascii=False)  # the value is not echoed


def test_each_field_is_bounded_by_its_declared_type():
    schema = declaration.schema_of(tuple(declaration.DeclarationFieldSchema().load(spec) for spec in (
        {"key": "purpose", "name": "Mục đích", "type": "text", "max_length": 10, "required": True},
        {"key": "kind", "name": "Loại", "type": "choice", "choices": ["a", "b"]})))
    assert declaration.check(schema, {"purpose": "ở", "kind": "a"}) == {"purpose": "ở", "kind": "a"}
    for form, field in (({"purpose": "x" * 11}, "form.purpose"), ({}, "form.purpose"),
                        ({"purpose": "ở", "kind": "c"}, "form.kind")):
        with pytest.raises(ValidationFailed) as error:
            declaration.check(schema, form)
        assert error.value.field == field


@pytest.mark.parametrize("spec, field", [
    ({"key": "k", "name": "n", "type": "choice"}, "choices"),
    ({"key": "k", "name": "n", "type": "text", "max_length": declaration.TEXT_MAX + 1}, "max_length"),
    ({"key": "k", "name": "n", "type": "integer", "min": 5, "max": 1}, "max"),
    ({"key": "K-1", "name": "n", "type": "text"}, "key"),
    ({"key": "k", "name": "n", "type": "file"}, "type"),
])
def test_the_catalogue_refuses_an_unbounded_or_broken_field(spec, field):
    with pytest.raises(ValidationError) as error:
        declaration.DeclarationFieldSchema().load(spec)
    assert field in error.value.messages


@pytest.mark.parametrize("form", [
    {"notes": "x" * (MAX_DECLARATION_BYTES + 1)},  # 20 MB would be refused the same way, before the bus
    {"nested": {"deep": ["x"]}},
    {"k" * 41: 1},
])
def test_the_contract_bounds_the_whole_declaration_before_any_procedure_is_read(form):
    with pytest.raises(ValidationFailed) as error:
        load_valid(SubmitDossierV1(), {"procedure_code": LAND, "channel": "online", "applicant": APPLICANT,
                                       "form": form})
    assert error.value.field.startswith("form")


def test_every_field_a_process_or_a_worker_reads_is_declared(catalog):
    processes = load_processes(catalog_dir(), "Asia/Ho_Chi_Minh").processes
    for code, process in processes.items():
        reads = {step.when.field for step in process.steps if step.when}
        reads |= {branch.when.field for stage in process.stages for branch in stage if branch.when}
        reads |= {step.agency.serving.removeprefix("form.") for step in process.steps
                  if (step.agency.serving or "").startswith("form.")}
        if any(step.handled_by == "system" and step.agency_code == TAX_OFFICE for step in process.steps):
            reads |= {"land_area_m2", "land_price_vnd_per_m2"}  # workers/tax_office.py's fee notice
        declared = {f["key"] for f in catalog.procedure(code).declaration}
        assert reads <= declared, f"{code} reads undeclared fields {sorted(reads - declared)}"
