"""A synthetic province at a real province's scale, as a catalogue directory (MOTCUA_CATALOG_DIR):
2,000 procedures, 1,000 agencies (the province, 31 departments and their units, 100 communes, a police
station for each commune, tax and social-insurance offices each serving ten communes), and a process
for every procedure, a quarter of them across agencies (liên thông: commune → department's unit →
department; commune → the commune's police and social insurance in parallel → commune).

    python -m bench.province DIR [--procedures 2000] [--agencies 1000] [--communes 100] [--seed 14]
    MOTCUA_CATALOG_DIR=DIR make run

Deterministic for a seed. Names are Vietnamese with diacritics (what search has to fold); codes follow
the national formats but are fictitious (province H99). The demo province stays the default."""
from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROVINCE = "H99"

FIELDS = [  # (code, name, objects a procedure of that field is about)
    ("HT", "Hộ tịch", ["khai sinh", "khai tử", "kết hôn", "nhận cha, mẹ, con", "giám hộ", "thay đổi hộ tịch",
                       "xác nhận tình trạng hôn nhân", "trích lục hộ tịch"]),
    ("CT", "Chứng thực", ["bản sao từ bản chính", "chữ ký", "hợp đồng, giao dịch", "di chúc", "văn bản thỏa thuận"]),
    ("DD", "Đất đai", ["quyền sử dụng đất", "chuyển mục đích sử dụng đất", "giao đất", "thuê đất",
                       "Giấy chứng nhận quyền sử dụng đất", "biến động đất đai", "đo đạc địa chính"]),
    ("XD", "Hoạt động xây dựng", ["giấy phép xây dựng", "nhà ở riêng lẻ", "công trình tạm", "chứng chỉ hành nghề xây dựng",
                                   "thẩm định thiết kế"]),
    ("HKD", "Thành lập và hoạt động của hộ kinh doanh", ["hộ kinh doanh", "đăng ký kinh doanh"]),
    ("DN", "Thành lập và hoạt động doanh nghiệp", ["doanh nghiệp tư nhân", "công ty trách nhiệm hữu hạn",
                                                   "công ty cổ phần", "chi nhánh, văn phòng đại diện"]),
    ("LLTP", "Lý lịch tư pháp", ["Phiếu lý lịch tư pháp"]),
    ("CT2", "Đăng ký và quản lý cư trú", ["thường trú", "tạm trú", "lưu trú", "tạm vắng"]),
    ("BHXH", "Bảo hiểm xã hội", ["thẻ bảo hiểm y tế", "sổ bảo hiểm xã hội", "chế độ thai sản", "chế độ ốm đau",
                                 "trợ cấp một lần"]),
    ("THUE", "Thuế", ["mã số thuế", "hóa đơn điện tử", "miễn, giảm thuế", "hoàn thuế"]),
    ("GD", "Giáo dục và Đào tạo", ["trường mầm non", "trường tiểu học", "văn bằng, chứng chỉ", "trung tâm ngoại ngữ",
                                   "chuyển trường"]),
    ("YT", "Y tế", ["giấy phép hành nghề khám bệnh, chữa bệnh", "cơ sở bán lẻ thuốc", "an toàn thực phẩm",
                    "phòng khám đa khoa"]),
    ("VH", "Văn hóa", ["biểu diễn nghệ thuật", "quảng cáo", "di tích", "lễ hội", "karaoke, vũ trường"]),
    ("DL", "Du lịch", ["cơ sở lưu trú du lịch", "hướng dẫn viên du lịch", "lữ hành nội địa"]),
    ("GT", "Đường bộ", ["giấy phép lái xe", "đăng ký xe", "phù hiệu xe", "giấy phép vận tải"]),
    ("NN", "Nông nghiệp", ["giống cây trồng", "thuốc bảo vệ thực vật", "thú y", "chăn nuôi", "phân bón"]),
    ("TS", "Thủy sản", ["tàu cá", "nuôi trồng thủy sản", "khai thác thủy sản"]),
    ("LN", "Lâm nghiệp", ["khai thác rừng", "giống cây lâm nghiệp", "gỗ hợp pháp"]),
    ("MT", "Môi trường", ["giấy phép môi trường", "đánh giá tác động môi trường", "chất thải nguy hại"]),
    ("TNN", "Tài nguyên nước", ["khai thác nước dưới đất", "xả nước thải", "hành nghề khoan nước"]),
    ("KS", "Khoáng sản", ["thăm dò khoáng sản", "khai thác khoáng sản", "đóng cửa mỏ"]),
    ("LD", "Lao động", ["giấy phép lao động", "cho thuê lại lao động", "nội quy lao động", "thỏa ước lao động"]),
    ("VL", "Việc làm", ["trợ cấp thất nghiệp", "dịch vụ việc làm", "hỗ trợ học nghề"]),
    ("NCC", "Người có công", ["trợ cấp người có công", "liệt sĩ", "thương binh", "điều dưỡng phục hồi sức khỏe"]),
    ("BTXH", "Bảo trợ xã hội", ["trợ cấp xã hội", "cơ sở trợ giúp xã hội", "người khuyết tật", "hộ nghèo"]),
    ("TE", "Trẻ em", ["chăm sóc thay thế", "hỗ trợ trẻ em"]),
    ("TM", "Thương mại", ["bán lẻ rượu", "sản phẩm thuốc lá", "khuyến mại", "hội chợ, triển lãm", "xăng dầu"]),
    ("CN", "Công nghiệp", ["vật liệu nổ công nghiệp", "hóa chất", "an toàn điện"]),
    ("KHCN", "Khoa học và Công nghệ", ["chuyển giao công nghệ", "tổ chức khoa học", "đo lường", "tiêu chuẩn, chất lượng"]),
    ("TTTT", "Thông tin và Truyền thông", ["bản tin", "xuất bản", "trang thông tin điện tử", "in ấn"]),
    ("NV", "Nội vụ", ["hội, quỹ", "tôn giáo", "thi đua, khen thưởng", "thi tuyển công chức", "văn thư, lưu trữ"]),
    ("TP", "Tư pháp", ["công chứng", "luật sư", "giám định tư pháp", "trợ giúp pháp lý", "hòa giải thương mại",
                       "đấu giá tài sản"]),
    ("TC", "Tài chính", ["tài sản công", "giá", "quản lý ngân sách"]),
    ("KHDT", "Đầu tư", ["chủ trương đầu tư", "giấy chứng nhận đăng ký đầu tư", "đầu tư theo phương thức đối tác công tư"]),
    ("DT", "Dân tộc", ["chính sách dân tộc", "người có uy tín"]),
    ("TDTT", "Thể dục thể thao", ["câu lạc bộ thể thao", "giải thi đấu thể thao", "kinh doanh hoạt động thể thao"]),
    ("PCCC", "Phòng cháy, chữa cháy", ["thẩm duyệt thiết kế về phòng cháy", "nghiệm thu phòng cháy"]),
    ("QP", "Quân sự địa phương", ["đăng ký nghĩa vụ quân sự", "chế độ chính sách quân nhân"]),
]
VERBS = ["Cấp", "Cấp lại", "Cấp đổi", "Điều chỉnh", "Gia hạn", "Thu hồi", "Đăng ký", "Đăng ký thay đổi",
         "Xác nhận", "Thẩm định", "Công nhận", "Chấm dứt", "Giải quyết", "Hỗ trợ", "Thông báo"]
QUALIFIERS = ["", "", " cho cá nhân", " cho tổ chức", " có yếu tố nước ngoài", " trong trường hợp bị mất",
              " đối với hộ gia đình", " tại cấp xã"]
DEPARTMENTS = ["Văn phòng Ủy ban nhân dân tỉnh", "Sở Tư pháp", "Sở Tài chính", "Sở Xây dựng",
               "Sở Nông nghiệp và Môi trường", "Sở Công Thương", "Sở Giáo dục và Đào tạo", "Sở Y tế",
               "Sở Văn hóa, Thể thao và Du lịch", "Sở Khoa học và Công nghệ", "Sở Nội vụ", "Sở Dân tộc và Tôn giáo",
               "Công an tỉnh", "Thanh tra tỉnh", "Sở Ngoại vụ", "Ban Quản lý các khu công nghiệp",
               "Thuế tỉnh", "Kho bạc Nhà nước khu vực", "Bảo hiểm xã hội tỉnh", "Bộ Chỉ huy Quân sự tỉnh",
               "Trung tâm Phục vụ hành chính công tỉnh", "Ngân hàng Nhà nước chi nhánh", "Cục Thống kê tỉnh",
               "Đài Phát thanh và Truyền hình", "Ban Dân tộc", "Sở Quy hoạch - Kiến trúc", "Ban Quản lý dự án",
               "Hải quan tỉnh", "Liên đoàn Lao động tỉnh", "Quỹ Đầu tư phát triển tỉnh", "Hội Nông dân tỉnh"]
POLICE, TAX, SOCIAL = 13, 17, 19  # their places (1-based) in DEPARTMENTS: the vertical offices' parents
UNIT_KINDS = ["Chi cục", "Trung tâm", "Phòng", "Ban", "Văn phòng"]
PLACES = ["Hạc Thành", "Quảng Phú", "Đông Sơn", "Nam Ngạn", "Hàm Rồng", "Tào Xuyên", "Nguyệt Viên", "Quảng Hưng",
          "Đông Tiến", "Thiệu Hóa", "Hoằng Hóa", "Hậu Lộc", "Nga Sơn", "Tĩnh Gia", "Nông Cống", "Triệu Sơn",
          "Thọ Xuân", "Yên Định", "Vĩnh Lộc", "Thạch Thành", "Cẩm Thủy", "Ngọc Lặc", "Lang Chánh", "Bá Thước"]


def code(first: int, second: int, third: int) -> str:
    return f"{first:03d}.{second:02d}.{third:02d}.{PROVINCE}"


def agencies(total: int, communes: int) -> list[dict]:
    province = code(0, 0, 0)
    found = [{"code": province, "name": "Ủy ban nhân dân tỉnh Mẫu", "level": "province"}]
    departments = [code(0, 0, i) for i in range(1, len(DEPARTMENTS) + 1)]
    found += [{"code": c, "name": name, "level": "department", "parent_code": province}
              for c, name in zip(departments, DEPARTMENTS)]
    commune_codes = [code(0, 60 + i // 99, i % 99 + 1) for i in range(communes)]
    kinds = ("Phường", "Xã")
    for i, c in enumerate(commune_codes):
        found.append({"code": c, "name": f"Ủy ban nhân dân {kinds[i % 2].lower()} {_place(i)}",
                      "level": "commune", "parent_code": province})
    for i, c in enumerate(commune_codes):  # a police station per commune, serving it
        found.append({"code": code(0, 70 + i // 99, i % 99 + 1), "name": f"Công an {kinds[i % 2].lower()} {_place(i)}",
                      "level": "unit", "parent_code": departments[POLICE - 1], "serves": [c]})
    for parent, name in ((TAX, "Thuế cơ sở"), (SOCIAL, "Bảo hiểm xã hội cơ sở")):
        for office, start in enumerate(range(0, communes, 10)):
            found.append({"code": code(0, parent, office + 1), "name": f"{name} số {office + 1}", "level": "unit",
                          "parent_code": departments[parent - 1], "serves": commune_codes[start:start + 10]})
    generic = [i for i in range(1, len(DEPARTMENTS) + 1) if i not in (POLICE, TAX, SOCIAL)]
    counts = {i: 0 for i in generic}
    while len(found) < total:
        department = generic[(len(found)) % len(generic)]
        counts[department] += 1
        unit = counts[department] + (20 if department in (TAX, SOCIAL) else 0)
        kind = UNIT_KINDS[unit % len(UNIT_KINDS)]
        found.append({"code": code(0, department, unit), "level": "unit", "parent_code": departments[department - 1],
                      "name": f"{kind} {unit} thuộc {DEPARTMENTS[department - 1]}"})
    return found


def _place(i: int) -> str:
    return f"{PLACES[i % len(PLACES)]}{'' if i < len(PLACES) else f' {i // len(PLACES) + 1}'}"


def procedures(count: int, agency_list: list[dict], rng: random.Random) -> list[dict]:
    communes = [a["code"] for a in agency_list if a["level"] == "commune"]
    units = [a["code"] for a in agency_list if a["level"] == "unit" and not a.get("serves")]
    departments = [a["code"] for a in agency_list if a["level"] == "department"]
    names = sorted({f"{verb} {obj}{qualifier}" for _, _, objects in FIELDS for obj in objects for verb in VERBS
                    for qualifier in QUALIFIERS})
    rng.shuffle(names)
    found = []
    for i in range(count):
        field_code, _, objects = next(f for f in FIELDS if any(o in names[i] for o in f[2]))
        level = rng.choices(("commune", "department", "unit"), (35, 40, 25))[0]
        agency = rng.choice({"commune": communes, "department": departments, "unit": units}[level])
        days, unit = rng.choice([(0, "working_days"), (1, "working_days"), (3, "working_days"), (5, "working_days"),
                                 (7, "working_days"), (10, "working_days"), (15, "working_days"),
                                 (20, "working_days"), (30, "calendar_days"), (4, "working_hours")])
        procedure = {"code": f"{1 + i % 2}.{100000 + i:06d}", "version": 1, "effective_from": "2025-07-01",
                     "name": f"Thủ tục {names[i][0].lower()}{names[i][1:]}", "field": field_code, "level": level,
                     "agency_code": agency, "processing_time": {"value": days, "unit": unit}}
        if days == 0 and unit == "working_days":
            procedure["cutoff"] = "15:00"
        fee = rng.choice([0, 0, 0, 8000, 20000, 50000, 100000, 200000, "tiers"])
        if fee == "tiers":
            procedure.update(fee=2000, fee_unit="page", fee_cap=200000,
                             fee_tiers=[{"per_page": 2000, "pages": 2}, {"per_page": 1000}])
        else:
            procedure["fee"] = fee
            if fee and rng.random() < 0.3:  # half the fee online, as several provinces decided
                procedure["channels"] = {"online": {"fee": fee // 2}}
        procedure["online_level"] = rng.choice(("full", "full", "partial"))
        procedure["documents"] = [{"key": "to_khai", "name": f"Tờ khai {names[i][0].lower()}{names[i][1:]}"}] + [
            {"key": f"giay_to_{n}", "name": f"Giấy tờ chứng minh số {n}", "kind": rng.choice(("original", "copy")),
             **({"required": False} if n == 3 else {})} for n in range(1, rng.randint(1, 4))]
        found.append(procedure)
        if i % 10 == 0:  # a tenth amended since: a second version (the paper household book dropped)
            found.append({**procedure, "version": 2, "effective_from": "2026-01-01",
                          "documents": procedure["documents"][:1]})
    return found


def processes(procedure_list: list[dict], agency_list: list[dict], rng: random.Random) -> list[dict]:
    by_code = {a["code"]: a for a in agency_list}
    units_of: dict[str, list[str]] = {}
    for a in agency_list:
        if a["level"] == "unit" and not a.get("serves"):
            units_of.setdefault(a["parent_code"], []).append(a["code"])
    departments = sorted(units_of)
    police, social = code(0, 0, POLICE), code(0, 0, SOCIAL)
    found = []
    for p in (p for p in procedure_list if p["version"] == 1):
        time_ = p["processing_time"]
        days = max(1, time_["value"] // 8 if time_["unit"] == "working_hours" else time_["value"])
        agency = p["agency_code"]
        pattern = rng.random()
        if p["level"] == "commune" and pattern < 0.12:  # the newborn-bundle shape: parallel branches
            share = max(1, days // 3)
            steps = [{"parallel": [
                {"steps": [_step("Thẩm định hồ sơ", agency, "specialist", share)]},
                {"steps": [{"name": "Đăng ký cư trú", "agency": {"under": police, "serving": "receiving"},
                            "role": "specialist", "allowance": share}]},
                {"steps": [{"name": "Cấp thẻ bảo hiểm y tế", "agency": {"under": social, "serving": "receiving"},
                            "role": "specialist", "allowance": share}]}]},
                _step("Tổng hợp kết quả, trả cho Bộ phận một cửa", agency, "specialist", 0.5)]
        elif p["level"] == "commune" and pattern < 0.3:  # commune receives, a department decides
            department = rng.choice(departments)
            unit = rng.choice(units_of[department])
            steps = [_step("Tiếp nhận, chuyển hồ sơ", agency, "specialist", 0.5),
                     _step("Thẩm định hồ sơ", unit, "specialist", max(0.5, days - 2)),
                     _step("Phê duyệt, ký kết quả", department, "leader", 1),
                     _step("Vào sổ, trả kết quả", agency, "specialist", 0.5)]
        elif p["level"] == "unit" and pattern < 0.2:  # a unit examines, its department signs
            steps = [_step("Thẩm định hồ sơ", agency, "specialist", max(0.5, days - 1)),
                     _step("Phê duyệt, ký kết quả", by_code[agency]["parent_code"], "leader", 1)]
        else:
            steps = [_step("Thẩm định, đề xuất", agency, "specialist", max(0.5, days - 1)),
                     _step("Phê duyệt, ký kết quả", agency, "leader", 1)]
        found.append({"procedure_code": p["code"], "steps": steps})
    return found


def _step(name: str, agency: str, role: str, allowance) -> dict:
    return {"name": name, "agency_code": agency, "role": role, "allowance": allowance}


def write(directory: Path, procedure_count: int = 2000, agency_count: int = 1000, communes: int = 100,
          seed: int = 14) -> None:
    rng = random.Random(seed)
    agency_list = agencies(agency_count, communes)
    procedure_list = procedures(procedure_count, agency_list, rng)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    header = "# A synthetic province (bench/province.py, seed %d): generated, not edited.\n" % seed
    files = {
        "agencies.yaml": {"province": {"code": PROVINCE, "name": "Tỉnh Mẫu", "time_zone": "Asia/Ho_Chi_Minh"},
                          "levels": ["province", "department", "unit", "commune"], "agencies": agency_list},
        "procedures.yaml": {"fields": [{"code": c, "name": n} for c, n, _ in FIELDS], "procedures": procedure_list},
        "processes.yaml": {"processes": processes(procedure_list, agency_list, rng)},
    }
    for name, data in files.items():
        (directory / name).write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120),
                                      encoding="utf-8")
    for name in ("calendar.yaml", "demo-users.yaml"):  # the national calendar; demo accounts per agency
        shutil.copy(ROOT / "deploy" / "catalog" / name, directory / name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.province", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--procedures", type=int, default=2000)
    parser.add_argument("--agencies", type=int, default=1000)
    parser.add_argument("--communes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    write(args.directory, args.procedures, args.agencies, args.communes, args.seed)
    print(f"wrote {args.directory}: MOTCUA_CATALOG_DIR={args.directory} make run")


if __name__ == "__main__":
    main()
