"""Input schemas: a bad field is named in dotted form."""
import pytest

from motcua.errors import ValidationFailed
from motcua.errors import load_valid as load
from services.gateway.api_reports import TIMELINESS_QUERY
from services.gateway.schemas import SubmitDossierSchema


def dossier(**changes):
    body = {"procedure_code": "1.001193", "channel": "online",
            "applicant": {"full_name": "Lê Văn Bình", "id_number": "038090001234", "phone": "0912345678"}}
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    return body


def field_of(body) -> str:
    with pytest.raises(ValidationFailed) as failure:
        load(SubmitDossierSchema(), body)
    return failure.value.field


def test_a_valid_body_gets_defaults():
    loaded = load(SubmitDossierSchema(), dossier())
    assert loaded["form"] == {}
    assert loaded["applicant"]["email"] is None


@pytest.mark.parametrize("phone", ["0912345678", "+84912345678"])
def test_vietnamese_mobile_numbers_pass(phone):
    assert load(SubmitDossierSchema(), dossier(applicant__phone=phone))["applicant"]["phone"] == phone


@pytest.mark.parametrize("phone", ["912345678", "09123456789", "+8409123456789", "0912 345 678", "+1 555 0100"])
def test_a_bad_phone_names_applicant_phone(phone):
    assert field_of(dossier(applicant__phone=phone)) == "applicant.phone"


@pytest.mark.parametrize("id_number", ["12345678", "1234567890", "03809000123X"])
def test_id_number_is_9_or_12_digits(id_number):
    assert field_of(dossier(applicant__id_number=id_number)) == "applicant.id_number"


@pytest.mark.parametrize("changes, field", [
    ({"channel": "fax"}, "channel"),
    ({"procedure_code": ""}, "procedure_code"),
    ({"applicant__email": "not-an-email"}, "applicant.email"),
    ({"applicant__full_name": ""}, "applicant.full_name"),
    ({"form": ["not", "a", "dict"]}, "form"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_fields_are_named(changes, field):
    assert field_of(dossier(**changes)) == field


def test_missing_applicant_field_is_named():
    body = dossier()
    del body["applicant"]["id_number"]
    assert field_of(body) == "applicant.id_number"


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(ValidationFailed):
        load(SubmitDossierSchema(), ["a list"])


def test_report_period_must_be_ordered():
    """One contract for a report's period on every report route (motcua.contracts.rpc.ReportQueryV1)."""
    with pytest.raises(ValidationFailed) as failure:
        load(TIMELINESS_QUERY, {"from": "2026-03-01", "to": "2026-02-01"})
    assert failure.value.field == "to"
