"""One rule each for Vietnamese text and phone numbers, whichever service needs them."""
from motcua.text import fold, normalise_phone, strip_diacritics


def test_diacritics_go_and_d_with_stroke_becomes_d():
    assert strip_diacritics("Nguyễn Thị Ánh, ĐÃ TIẾP NHẬN hồ sơ đất đai") == "Nguyen Thi Anh, DA TIEP NHAN ho so dat dai"


def test_the_search_key_is_how_people_type():
    assert fold("Đăng ký KHAI SINH, (bản sao)").split() == ["dang", "ky", "khai", "sinh", "ban", "sao"]
    assert fold("Cấp đổi Giấy chứng nhận") == fold("cap doi giay chung nhan")


def test_one_form_of_a_mobile_number():
    for raw in ("0912345678", "+84912345678", "84912345678", "091 234 5678", "091.234.5678", "(091) 234-5678"):
        assert normalise_phone(raw) == "0912345678"
    assert normalise_phone("12345") is None and normalise_phone(None) is None
