"""Applicants (individual / organisation, phone normalised, searchable keyed hashes) and the staff
search of dossiers, scoped to the caller's agency."""
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from motcua.contracts.rpc import ApplicantV1, SearchDossiersV1
from motcua.errors import Forbidden, ValidationFailed, load_valid
from motcua.identity import Caller
from motcua.text import normalise_phone
from services.intake import dossiers, search
from tests.documents import required_uploads
from tests.intake.test_dossiers import APPLICANT, COMMUNE, MONDAY_9AM, RECEPTIONIST, XA, XA_RECEPTIONIST

LATER = datetime(2026, 4, 1, 2, tzinfo=timezone.utc)


def submit(uow, policy, applicant, procedure="1.012786", now=MONDAY_9AM):
    payload = {"procedure_code": procedure, "channel": "online", "form": {}, "documents": required_uploads(procedure),
               "applicant": load_valid(ApplicantV1(), applicant)}
    return dossiers.submit(uow, policy, payload, None, now)


def find(uow, policy, caller=RECEPTIONIST, now=LATER, **filters):
    found = search.search(uow, policy.search_key, policy.calendar.tz, load_valid(SearchDossiersV1(), filters), caller,
                          now, policy.catalog)
    return [item["code"] for item in found["items"]], found


def test_applicant_types_and_phone_forms():
    organisation = load_valid(ApplicantV1(), {**APPLICANT, "type": "organisation", "tax_code": "0101234567-001"})
    assert (organisation["type"], organisation["tax_code"]) == ("organisation", "0101234567-001")
    assert normalise_phone("+84912345678") == normalise_phone("0912345678") == "0912345678"
    with pytest.raises(ValidationFailed) as error:
        load_valid(ApplicantV1(), {**APPLICANT, "type": "organisation"})
    assert error.value.field == "tax_code"
    with pytest.raises(ValidationFailed) as error:
        load_valid(ApplicantV1(), {**APPLICANT, "id_number": "12345"})
    assert error.value.field == "id_number"


def test_staff_search_by_name_id_phone_status_dates_and_overdue(uow, policy):
    an = submit(uow, policy, APPLICANT)
    binh = submit(uow, policy, {**APPLICANT, "full_name": "Trần Thị Bình", "id_number": "038190012345",
                                "phone": "+84987654321"}, now=datetime(2026, 3, 5, 2, tzinfo=timezone.utc))
    dossiers.receive(uow, policy, an.code, RECEPTIONIST, MONDAY_9AM)  # due 16 March: overdue on 1 April
    elsewhere = submit(uow, policy, APPLICANT, procedure="1.004873")  # another commune's dossier

    assert find(uow, policy, name="nguyen van")[0] == [an.code]
    assert find(uow, policy, name="TRAN THI BINH")[0] == [binh.code]
    assert find(uow, policy, id_number="038190012345")[0] == [binh.code]
    assert find(uow, policy, phone="0987654321")[0] == [binh.code]
    assert find(uow, policy, status="received")[0] == [an.code]
    assert find(uow, policy, overdue=True)[0] == [an.code]
    assert find(uow, policy, overdue=True, now=MONDAY_9AM)[0] == []
    assert find(uow, policy, date_from=date(2026, 3, 4), date_to=date(2026, 3, 5))[0] == [binh.code]
    assert find(uow, policy, code=an.code)[0] == [an.code]
    assert find(uow, policy, code=COMMUNE)[0] == [binh.code, an.code]  # newest first
    codes, page = find(uow, policy, page=2, page_size=1)
    assert (codes, page["total"]) == ([an.code], 2)
    assert page["items"][0]["applicant"] == "Nguyễn V. A."  # masked in lists
    assert find(uow, policy, caller=XA_RECEPTIONIST)[0] == [elsewhere.code]  # agency-scoped
    admin = Caller("admin", None, ("admin",))
    assert len(find(uow, policy, caller=admin)[0]) == 3
    with pytest.raises(Forbidden):
        find(uow, policy, caller=Caller("someone", XA, ()))

    # the database holds keyed hashes for lookup, not plain copies
    hashes = uow.session.execute(text("SELECT applicant_id_hash, applicant_phone_hash FROM dossiers")).all()
    assert all(len(h) == 64 and APPLICANT["id_number"] not in h for row in hashes for h in row)


def test_search_filters_are_validated():
    with pytest.raises(ValidationFailed) as error:
        load_valid(SearchDossiersV1(), {"date_from": "2026-03-05", "date_to": "2026-03-01"})
    assert error.value.field == "date_from"
    with pytest.raises(ValidationFailed) as error:
        load_valid(SearchDossiersV1(), {"page_size": 1000})
    assert error.value.field == "page_size"


def test_each_listed_dossier_names_its_missing_mandatory_documents_and_the_counter_filters_by_them(uow, policy):
    """The counter's queue flags a dossier lacking a mandatory document (taken at the counter; online
    ones come complete) and can show only those, or only complete ones."""
    complete = submit(uow, policy, APPLICANT)
    at_counter = dossiers.submit(uow, policy, {
        "procedure_code": "1.012786", "channel": "counter", "form": {}, "applicant": load_valid(ApplicantV1(), APPLICANT),
        "documents": [u for u in required_uploads("1.012786") if u["key"] == "don_de_nghi"]}, RECEPTIONIST, LATER)
    codes, found = find(uow, policy, status="submitted")
    assert codes == [at_counter.code, complete.code]
    flags = {item["code"]: item["documents_missing"] for item in found["items"]}
    assert flags[complete.code] == []
    assert flags[at_counter.code] == [{"key": "xac_nhan_niem_yet", "name": policy.catalog.procedure(
        "1.012786").document("xac_nhan_niem_yet")["name"]}]
    lacking, page = find(uow, policy, status="submitted", documents_missing=True)
    assert (lacking, page["total"]) == ([at_counter.code], 1)
    assert find(uow, policy, documents_missing=False)[0] == [complete.code]
    dossiers.receive(uow, policy, at_counter.code, RECEPTIONIST, LATER)
    assert find(uow, policy, status="submitted", documents_missing=True)[0] == []  # the queue's filter


def test_the_missing_documents_filter_refuses_a_search_too_wide_to_judge(uow, policy, monkeypatch):
    """Which documents are mandatory is judged in the service, row by row: a search over more dossiers
    than it reads for that is refused with the filter named, not read whole."""
    for _ in range(3):
        submit(uow, policy, APPLICANT)
    monkeypatch.setattr(search, "MAX_JUDGED", 2)
    with pytest.raises(ValidationFailed) as error:
        find(uow, policy, documents_missing=True)
    assert error.value.field == "documents_missing" and "narrow the search" in str(error.value)
    monkeypatch.setattr(search, "MAX_JUDGED", 3)  # as many as match: judged, all complete (online)
    assert find(uow, policy, documents_missing=True)[0] == []
    assert len(find(uow, policy, documents_missing=False)[0]) == 3
