"""SMS text rules: unaccented GSM-7, segment counts, Vietnamese mobile numbers."""
import pytest

from motcua.text import normalise_phone
from services.notify.sms import fit, mask_phone, measure, unaccent


def test_unaccent_vietnamese():
    assert unaccent("Nguyễn Thị Ánh, ĐÃ TIẾP NHẬN hồ sơ đất đai") == "Nguyen Thi Anh, DA TIEP NHAN ho so dat dai"
    assert unaccent("“Kết quả” – xong…") == '"Ket qua" - xong...'
    assert unaccent("日本") == "??"  # anything else is still GSM-7


@pytest.mark.parametrize("text, encoding, units, segments", [
    ("a" * 160, "GSM-7", 160, 1), ("a" * 161, "GSM-7", 161, 2), ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3), ("€" * 80, "GSM-7", 160, 1), ("[" * 81, "GSM-7", 162, 2),
    ("Ồ" * 70, "UCS-2", 70, 1), ("Ồ" * 71, "UCS-2", 71, 2),
])
def test_measure(text, encoding, units, segments):
    length = measure(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


def test_fit_cuts_with_an_ellipsis():
    assert fit("short") == "short"
    cut = fit("x" * 200)
    assert cut.endswith("...") and measure(cut).units == 160
    assert measure(fit("y" * 400, max_segments=2)).segments == 2


@pytest.mark.parametrize("raw, phone", [
    ("0912345678", "0912345678"), ("+84 912 345 678", "0912345678"), ("84912345678", "0912345678"),
    ("091.234.5678", "0912345678"), ("12345", None), ("", None), (None, None), ("09123456789", None),
])
def test_normalise_phone(raw, phone):
    assert normalise_phone(raw) == phone


def test_mask_phone():
    assert mask_phone("0912345678") == "091****678" and mask_phone("123") == "***"
