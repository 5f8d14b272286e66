"""Reception anywhere in the province (Decree 118/2025/NĐ-CP, tiếp nhận hồ sơ không phụ thuộc địa giới
hành chính) on in-memory fakes: which commune receives a dossier, and that it is that commune's."""
from datetime import date

import pytest

from motcua.errors import Forbidden, ValidationFailed
from services.intake import dossiers
from tests.intake.test_dossiers import (APPLICANT, COMMUNE, LAND_OFFICE, MONDAY_9AM, RECEPTIONIST, XA,
                                        XA_RECEPTIONIST, outbox, submission)

EXTRACT_COPY = "2.000635"  # cấp bản sao trích lục hộ tịch: received anywhere, 000.20.02.H56 by default
DAY = date(2026, 3, 2)


def submit(uow, policy, procedure=EXTRACT_COPY, channel="online", caller=None, address=APPLICANT["address"],
           **extra):
    payload = submission(procedure, channel)
    payload = {**payload, "applicant": {**APPLICANT, "address": address}, **extra}
    return dossiers.submit(uow, policy, payload, caller, MONDAY_9AM)


def test_the_online_applicant_chooses_another_commune_which_receives_and_numbers_it(uow, policy):
    # The applicant lives in Hạc Thành (COMMUNE) and chooses Quảng Phú (XA).
    dossier = submit(uow, policy, receiving_agency_code=XA)
    assert dossier.agency_code == XA and dossier.code == f"{XA}-260302-0001"
    assert outbox(uow)[-1]["data"]["agency_code"] == XA  # what reporting counts the dossier at
    with pytest.raises(Forbidden):
        dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)  # not Hạc Thành's to receive
    received = dossiers.receive(uow, policy, dossier.code, XA_RECEPTIONIST, MONDAY_9AM)
    assert received.status == "received" and outbox(uow)[-1]["data"]["agency_code"] == XA


def test_without_a_choice_the_commune_of_the_address_receives_it(uow, policy):
    # The procedure's own commune is Quảng Phú; the applicant's address names Hạc Thành (with or without
    # diacritics, with or without "phường").
    for address in ("12 Lê Lợi, Hạc Thành", "so 3 pho Hang Bong, phuong hac thanh, Thanh Hoa"):
        assert submit(uow, policy, address=address).agency_code == COMMUNE
    for address in (None, "12 Lê Lợi, Hà Nội", "Thôn Thành Hạc"):  # no commune of the province named
        assert submit(uow, policy, address=address).agency_code == XA


def test_at_a_counter_the_counter_receives_it_whatever_the_address(uow, policy):
    dossier = submit(uow, policy, channel="counter", caller=RECEPTIONIST, address="Thôn 2, xã Quảng Phú")
    assert dossier.agency_code == COMMUNE and dossier.code.startswith(COMMUNE)


def test_a_procedure_of_one_agency_is_received_there_only(uow, policy):
    # 1.012786 (land certificate re-issue) is received by Hạc Thành only: another commune is refused,
    # naming the field, and the address does not move it.
    with pytest.raises(ValidationFailed) as error:
        submit(uow, policy, procedure="1.012786", receiving_agency_code=XA)
    assert error.value.field == "receiving_agency_code" and "only 000.20.01.H56" in str(error.value)
    assert submit(uow, policy, procedure="1.012786", address="Thôn 2, xã Quảng Phú").agency_code == COMMUNE
    with pytest.raises(Forbidden):  # Quảng Phú's counter cannot receive it either
        submit(uow, policy, procedure="1.012786", channel="counter", caller=XA_RECEPTIONIST)


@pytest.mark.parametrize("chosen", [LAND_OFFICE, "000.99.99.H56", "000.00.00.H56"])
def test_only_a_commune_of_the_province_receives_a_commune_procedure(uow, policy, chosen):
    with pytest.raises(ValidationFailed) as error:
        submit(uow, policy, receiving_agency_code=chosen)
    assert error.value.field == "receiving_agency_code"
    assert not uow.dossiers.dossiers  # nothing written


def test_the_communes_that_may_receive_are_those_in_existence_that_day(policy):
    catalog = policy.catalog
    procedure = catalog.procedure(EXTRACT_COPY)
    assert sorted(catalog.receiving_agencies(procedure, DAY)) == [COMMUNE, XA]
    # Both communes exist from 1 July 2025 (the two-tier reform): before, none but the procedure's own.
    assert catalog.receiving_agencies(procedure, date(2025, 6, 30)) == []
    assert catalog.receiving_agencies(catalog.procedure("1.012786"), DAY) == [COMMUNE]
