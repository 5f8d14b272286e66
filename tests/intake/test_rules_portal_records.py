"""What intake gives reporting for the national portal (services/intake/portal.py): the applicant's
identity, the documents submitted, the fees and the result documents, from the dossier itself."""
import base64

from services.intake import dossiers, portal
from tests.documents import completed
from tests.intake.test_dossiers import APPLICANT, submission
from tests.intake.test_rules_step_outcomes import LAND_OFFICE, MONDAY_9AM, TAX_OFFICE, processing, utc

PDF = base64.b64encode(b"%PDF-1.4 don\n%%EOF\n").decode()


def test_the_record_holds_identity_documents_fees_and_results(uow, policy):
    dossier = dossiers.submit(uow, policy, {**submission(), "documents": completed("1.012786", [
        {"key": "don_de_nghi", "filename": "don.pdf", "content_base64": PDF}])}, None, MONDAY_9AM)
    uow.commit()
    procedure = policy.catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
    record = portal.record(dossier, procedure)
    assert record["applicant"] == {"name": APPLICANT["full_name"], "id_number": APPLICANT["id_number"],
                                   "type": "individual", "tax_code": None, "email": APPLICANT.get("email"),
                                   "phone": APPLICANT["phone"]}
    assert [(d["key"], d["name"], d["filename"]) for d in record["documents"]] == [
        ("don_de_nghi", "Đơn đề nghị cấp lại Giấy chứng nhận", "don.pdf"),
        ("xac_nhan_niem_yet", "Giấy xác nhận của Ủy ban nhân dân cấp xã về việc niêm yết thông báo mất Giấy chứng nhận",
         "xac-nhan-niem-yet.pdf")]
    assert record["result_documents"] == [] and record["flags"]["digitised"] is True
    assert record["field_name"] == procedure.field_name


def test_an_obligation_and_a_steps_documents_are_in_the_record(uow, policy):
    dossier = processing(uow, policy)
    dossiers.payment_required(uow, {"dossier_code": dossier.code, "agency_code": TAX_OFFICE, "task_id": "t2",
                                    "amount_vnd": 12_500_000, "note": "Lệ phí trước bạ",
                                    "required_at": utc(2026, 3, 3, 2)})
    dossier.step_documents([{"key": "giay_chung_nhan", "filename": "gcn.pdf", "content_type": "application/pdf",
                             "size": 10, "sha256": "c" * 64}], f"leader@{LAND_OFFICE}", utc(2026, 3, 4, 2))
    record = portal.record(dossier, None)  # a procedure the catalogue no longer has: names from the files
    assert record["fees"] == [{"kind": "obligation", "name": "Lệ phí trước bạ", "amount_vnd": 12_500_000,
                               "paid_at": None, "receipt": None}]
    assert [(d["key"], d["name"], d["uploaded_at"]) for d in record["result_documents"]] == [
        ("giay_chung_nhan", "gcn.pdf", "2026-03-04T02:00:00+00:00")]


def test_a_fee_paid_online_at_submission_is_paid_in_the_record(uow, policy):
    dossier = dossiers.submit(uow, policy, submission("2.000635"), None, MONDAY_9AM)
    procedure = policy.catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
    assert portal.record(dossier, procedure)["flags"]["paid_online"] is False
    dossier.fee_paid(8_000, "BL-261206-AB12", {"key": "receipt:bien_lai", "filename": "bl.pdf",
                                               "content_type": "application/pdf", "size": 9, "sha256": "d" * 64},
                     utc(2026, 3, 2, 3))
    record = portal.record(dossier, procedure)
    assert [(f["kind"], f["amount_vnd"], f["paid_at"], f["receipt"]) for f in record["fees"]] == [
        ("fee", 8_000, "2026-03-02T03:00:00+00:00", "BL-261206-AB12")]
    assert record["flags"]["paid_online"] is True


def test_a_dossier_submitted_signed_in_with_vneid_is_flagged_verified_with_the_identitys_name_and_number(uow, policy):
    """TaiKhoanDuocXacThucVoiVNeID: set by the submission's VNeID sign-in, not by anything in the payload;
    the payload's name and ID number give way to the identity's."""
    from motcua.identity import CITIZEN_ROLE, Caller

    citizen = Caller("vneid:vneid-7f3a91c2", None, (CITIZEN_ROLE,), citizen_id="038190012345",
                     citizen_name="Trần Thị Bình")
    verified = dossiers.submit(uow, policy, submission(), citizen, MONDAY_9AM)
    anonymous = dossiers.submit(uow, policy, submission(), None, MONDAY_9AM)
    uow.commit()
    assert (verified.applicant_name, verified.applicant_id_number) == ("Trần Thị Bình", "038190012345")
    assert (anonymous.applicant_name, anonymous.applicant_id_number) == (APPLICANT["full_name"], APPLICANT["id_number"])
    assert portal.record(verified, None)["flags"]["vneid_verified"] is True
    assert portal.record(anonymous, None)["flags"]["vneid_verified"] is False
    assert uow.dossiers.get(verified.code).vneid_verified is True  # kept through the store
