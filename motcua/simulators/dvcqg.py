"""The National Public Service Portal's integration adapter (Cổng DVCQG), simulated.

The protocol is the one provincial one-stop systems use towards the portal's adapter (as in OpenCPS's
`DVCQGIntegrationActionImpl`, docs/connections.md):
  POST {auth path}         {"username", "password"}                  → {"error_code": 0, "session": "…"}
  POST {integration path}  {"session", "madonvi", "service", …}        → {"error_code": "00", "message": …}
    service "DongBoHoSoMC"        + "isUpdating": "True"/"False", "data": [hồ sơ]   (the dossiers)
    service "CapNhatTienDoHoSoMC" + "data": [quá trình xử lý]                      (their progress)
    service "TraCuuHoSo"          + "mahoso"  → {"error_code": "00", "result": [hồ sơ + "QuaTrinhXuLy"]}
An expired or unknown session answers `error_code` "401"; a payload the portal refuses answers its own
non-"00" error code with a message. Dates are `yyyyMMddHHmmss` in Vietnam's time.

Run alone: `python -m motcua.simulators.dvcqg --port 8701` (username/password `motcua`/`motcua-dev`).
"""
from __future__ import annotations

import argparse
import re
import secrets
import time

from motcua.simulators.http import Answer, Request, Simulator

AUTH_PATH = "/api/auth"
INTEGRATION_PATH = "/api/integration"
DATE = re.compile(r"^\d{14}$")  # yyyyMMddHHmmss
STATUSES = {str(code) for code in range(1, 11)}
CHANNELS = {"1", "2", "3"}  # counter, online, public postal service (BCCI)
REQUIRED = ("MaHoSo", "MaTTHC", "KenhThucHien", "ChuHoSo", "SoGiayToChuHoSo", "LoaiDoiTuong", "TrangThaiHoSo",
            "NgayTiepNhan", "DonViXuLy")  # as the portal's adapter checks them (NgayTiepNhan: once received)
DATES = ("NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy", "NgayTuChoi", "NgayNopHoSo")
PROGRESS_REQUIRED = ("MaHoSo", "NguoiXuLy", "ThoiDiemXuLy", "NoiDungXuLy", "TrangThai")
PROGRESS_DATES = ("ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh")


class DvcqgSimulator(Simulator):
    """The portal's adapter for one province: `dossiers` {MaHoSo: hồ sơ}, `progress` {MaHoSo: {key: line}}."""

    def __init__(self, username: str = "motcua", password: str = "motcua-dev", agency_code: str = "000.00.00.H56",
                 port: int = 0, session_seconds: float = 1800):
        self.username, self.password, self.agency_code = username, password, agency_code
        self.session_seconds = session_seconds
        self.sessions: dict[str, float] = {}  # session → expiry (monotonic)
        self.dossiers: dict[str, dict] = {}
        self.progress: dict[str, dict[tuple, dict]] = {}
        self.refused: list[tuple[str, str]] = []  # (service, error) of each payload refused
        self.refuse_procedures: set[str] = set()  # MaTTHC the portal does not know (a permanent refusal)
        super().__init__(port)

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def handle(self, request: Request) -> Answer:
        if request.method != "POST" or not isinstance(request.body, dict):
            return Answer(400, {"error_code": "-1", "message": "POST a JSON object"})
        if request.path == AUTH_PATH:
            return self._login(request.body)
        if request.path != INTEGRATION_PATH:
            return Answer(404, {"error_code": "-1", "message": "no such endpoint"})
        body = request.body
        if self.sessions.get(body.get("session"), 0) < time.monotonic():
            return Answer(200, {"error_code": "401", "message": "phiên làm việc hết hạn"})
        if body.get("madonvi") != self.agency_code:
            return Answer(200, {"error_code": "403", "message": "mã đơn vị không đúng"})
        service = body.get("service")
        if service == "DongBoHoSoMC":
            return self._dossiers(body)
        if service == "CapNhatTienDoHoSoMC":
            return self._progress(body)
        if service == "TraCuuHoSo":
            return self._lookup(body)
        return Answer(200, {"error_code": "-1", "message": "dịch vụ không hỗ trợ"})

    def _login(self, body: dict) -> Answer:
        if body.get("username") != self.username or body.get("password") != self.password:
            return Answer(401, {"error_code": -1, "message": "sai tài khoản"})
        session = secrets.token_urlsafe(16)
        self.sessions[session] = time.monotonic() + self.session_seconds
        return Answer(200, {"error_code": 0, "session": session})

    def _refuse(self, service: str, message: str, code: str = "-1") -> Answer:
        self.refused.append((service, message))
        return Answer(200, {"error_code": code, "message": message})

    def _dossiers(self, body: dict) -> Answer:
        data = body.get("data")
        if not isinstance(data, list) or not data or body.get("isUpdating") not in ("True", "False"):
            return self._refuse("DongBoHoSoMC", "data và isUpdating bắt buộc")
        for dossier in data:
            error = _dossier_error(dossier)
            if error is None and dossier["MaTTHC"] in self.refuse_procedures:
                error = f"MaTTHC {dossier['MaTTHC']} không có trong CSDL TTHC"
                return self._refuse("DongBoHoSoMC", error, "TTHC_NOT_FOUND")
            if error:
                return self._refuse("DongBoHoSoMC", error)
        for dossier in data:
            self.dossiers[dossier["MaHoSo"]] = dossier
        return Answer(200, {"error_code": "00", "message": f"đồng bộ {len(data)} hồ sơ"})

    def _progress(self, body: dict) -> Answer:
        data = body.get("data")
        if not isinstance(data, list) or not data:
            return self._refuse("CapNhatTienDoHoSoMC", "data bắt buộc")
        for line in data:
            if not isinstance(line, dict) or any(line.get(key) in (None, "") for key in PROGRESS_REQUIRED):
                return self._refuse("CapNhatTienDoHoSoMC", "thiếu trường bắt buộc của tiến độ")
            if any(line.get(key) and not DATE.match(line[key]) for key in PROGRESS_DATES):
                return self._refuse("CapNhatTienDoHoSoMC", "ngày không đúng định dạng yyyyMMddHHmmss")
            if line["TrangThai"] not in STATUSES:
                return self._refuse("CapNhatTienDoHoSoMC", "TrangThai không hợp lệ")
            if line["MaHoSo"] not in self.dossiers:
                return self._refuse("CapNhatTienDoHoSoMC", "hồ sơ chưa được đồng bộ")
        for line in data:  # the same line sent again replaces itself
            key = (line["ThoiDiemXuLy"], line["NoiDungXuLy"], line["NguoiXuLy"])
            self.progress.setdefault(line["MaHoSo"], {})[key] = line
        return Answer(200, {"error_code": "00", "message": f"cập nhật {len(data)} tiến độ"})

    def _lookup(self, body: dict) -> Answer:
        dossier = self.dossiers.get(body.get("mahoso"))
        if dossier is None:
            return Answer(200, {"error_code": "00", "result": []})
        lines = sorted(self.progress.get(dossier["MaHoSo"], {}).values(), key=lambda line: line["ThoiDiemXuLy"])
        return Answer(200, {"error_code": "00", "result": [{**dossier, "QuaTrinhXuLy": lines}]})


def _dossier_error(dossier) -> str | None:
    if not isinstance(dossier, dict):
        return "hồ sơ phải là một đối tượng"
    missing = [key for key in REQUIRED if dossier.get(key) in (None, "")
               and not (key == "NgayTiepNhan" and dossier.get("TrangThaiHoSo") in ("1", "3"))]
    if missing:
        return f"thiếu {', '.join(missing)}"
    wrong = [key for key in DATES if dossier.get(key) and not DATE.match(str(dossier[key]))]
    if wrong:
        return f"{', '.join(wrong)} không đúng định dạng yyyyMMddHHmmss"
    if dossier["TrangThaiHoSo"] not in STATUSES:
        return "TrangThaiHoSo không hợp lệ"
    if dossier["KenhThucHien"] not in CHANNELS:
        return "KenhThucHien không hợp lệ"
    for name in ("TaiLieuNop", "DanhSachLePhi", "DanhSachGiayToKetQua", "DanhSachHoSoBoSung"):
        if not isinstance(dossier.get(name, []), list):
            return f"{name} phải là danh sách"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--username", default="motcua")
    parser.add_argument("--password", default="motcua-dev")
    parser.add_argument("--agency-code", default="000.00.00.H56")
    args = parser.parse_args(argv)
    DvcqgSimulator(args.username, args.password, args.agency_code, port=args.port).serve("DVCQG")


if __name__ == "__main__":
    main()
