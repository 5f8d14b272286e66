"""The national portal (DVCQG) sync end to end: `make run`'s embedded platform pushing to the portal
adapter's simulator, the applicant's identity and documents filled from intake."""
import base64
import time

import pytest

from motcua.simulators.dvcqg import DvcqgSimulator
from tests import infra
from tests.documents import completed
from tests.e2e.client import APPLICANT, COMMUNE, Api

pytestmark = pytest.mark.e2e


def test_a_submitted_and_received_dossier_reaches_the_portal_with_intakes_identity(tmp_path):
    portal = DvcqgSimulator("motcua", "e2e-password", "000.00.00.H56", port=infra.free_port()).start()
    settings = {"DVCQG_URL": portal.url, "DVCQG_USERNAME": "motcua", "DVCQG_PASSWORD": "e2e-password",
                "DVCQG_AGENCY_CODE": "000.00.00.H56", "DVCQG_PUSH_INTERVAL": "0.5"}
    try:
        with infra.embedded_platform_process(tmp_path, extra_env=settings) as (_process, base):
            api = Api(base)
            pdf = base64.b64encode(b"%PDF-1.4 don de nghi\n%%EOF\n").decode()
            response = api.command("POST", "/api/v1/dossiers", json={
                "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {},
                "documents": completed("1.012786", [{"key": "don_de_nghi", "filename": "don.pdf",
                                                     "content_base64": pdf}])})
            assert response.status_code == 201, response.text
            code = response.json()["code"]
            api.receive(code)
            deadline = time.monotonic() + 60
            while portal.dossiers.get(code, {}).get("TrangThaiHoSo") not in ("2", "4"):
                assert time.monotonic() < deadline, f"the portal has {portal.dossiers.get(code)}"
                time.sleep(0.2)
    finally:
        portal.stop()
    dossier = portal.dossiers[code]
    assert (dossier["ChuHoSo"], dossier["SoGiayToChuHoSo"], dossier["LoaiDoiTuong"]) == (
        APPLICANT["full_name"], APPLICANT["id_number"], "1")
    assert dossier["MaTTHC"] == "1.012786" and dossier["KenhThucHien"] == "2" and dossier["TenLinhVuc"]
    assert dossier["NgayTiepNhan"].isdigit() and len(dossier["NgayHenTra"]) == 14
    assert [(d["MaThanhPhanHoSo"], d["TenTepDinhKem"]) for d in dossier["TaiLieuNop"]] == [
        ("don_de_nghi", "Đơn đề nghị cấp lại Giấy chứng nhận"),
        ("xac_nhan_niem_yet", "Giấy xác nhận của Ủy ban nhân dân cấp xã về việc niêm yết thông báo mất Giấy chứng nhận")]
    assert dossier["HoSoCoThanhPhanSoHoa"] == "1"
    assert dossier["DonViXuLy"] and COMMUNE not in dossier["DonViXuLy"]  # the agency's name, not its code
    lines = portal.progress[code].values()
    assert {"Nộp hồ sơ", "Tiếp nhận hồ sơ"} <= {line["NoiDungXuLy"] for line in lines}
    assert portal.refused == []
