"""Processing time and fee as the national procedure database writes them (services/intake/legal_text.py)."""
from decimal import Decimal

import pytest

from services.intake.legal_text import Fee, Time, Unreadable, parse_fee, parse_time


@pytest.mark.parametrize("text, value, unit, cutoff", [
    ("05 ngày làm việc", 5, "working_days", None),
    ("5 ngày làm việc.", 5, "working_days", None),
    ("15 ngày", 15, "calendar_days", None),
    ("Tối đa 20 ngày", 20, "calendar_days", None),
    ("Trong ngày", 0, "working_days", None),
    ("Giải quyết ngay trong ngày làm việc", 0, "working_days", None),
    ("Ngay trong ngày tiếp nhận hồ sơ; trường hợp nhận hồ sơ sau 15 giờ thì trả kết quả trong ngày làm việc "
     "tiếp theo", 0, "working_days", "15:00"),
    ("Trong ngày, nếu tiếp nhận sau 15h30 thì trả trong ngày làm việc tiếp theo", 0, "working_days", "15:30"),
    ("Không quá 10 ngày làm việc kể từ ngày nhận đủ hồ sơ hợp lệ", 10, "working_days", None),
    ("Trong thời hạn 07 ngày làm việc kể từ ngày nhận được hồ sơ", 7, "working_days", None),
    ("2,5 ngày làm việc", Decimal("2.5"), "working_days", None),
    ("1.5 ngày làm việc", Decimal("1.5"), "working_days", None),
    ("04 giờ làm việc", 4, "working_hours", None),
    ("08 giờ", 8, "working_hours", None),
    ("30 NGÀY", 30, "calendar_days", None),
    ("30 ngay lam viec", 30, "working_days", None),  # typed without diacritics
])
def test_times_the_database_writes(text, value, unit, cutoff):
    read = parse_time(text)
    assert read.default == Time(Decimal(value), unit, cutoff)
    assert read.channels == {}


def test_a_conditional_longer_time_is_set_aside_and_said():
    read = parse_time("10 ngày làm việc; trường hợp cần xác minh thì không quá 15 ngày làm việc")
    assert read.default == Time(Decimal(10), "working_days")
    assert read.notes == ["set aside: 'truong hop can xac minh thi khong qua 15 ngay lam viec'"]


def test_times_per_channel():
    read = parse_time("Trực tiếp: 05 ngày làm việc; Trực tuyến: 03 ngày làm việc; Dịch vụ bưu chính: 05 ngày làm việc")
    assert read.default == Time(Decimal(5), "working_days")
    assert read.channels == {"online": Time(Decimal(3), "working_days")}  # the postal one equals the default


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    (None, "empty"),
    ("Theo quy định của pháp luật", "no duration"),
    ("03 tháng", "months"),
    ("02 tuần", "weeks"),
    ("1,5 ngày", "half a calendar day"),
    ("0,25 ngày làm việc", "0.5"),
    ("05 ngày làm việc hoặc 10 ngày", "2 durations"),
    ("Trong ngày, nhận sau 20 giờ thì hôm sau", "outside office hours"),
    ("Trực tiếp: 05 ngày làm việc; Trực tiếp: 03 ngày làm việc", "given twice"),
])
def test_times_it_does_not_read(text, reason):
    with pytest.raises(Unreadable, match=reason):
        parse_time(text)


@pytest.mark.parametrize("text, fee", [
    ("Không", Fee(0)),
    ("Không có", Fee(0)),
    ("Miễn lệ phí", Fee(0)),
    ("Miễn phí, lệ phí.", Fee(0)),
    ("0 đồng", Fee(0)),
    ("50.000 đồng", Fee(50000)),
    ("50,000 VNĐ", Fee(50000)),
    ("50 000 đồng", Fee(50000)),
    ("200.000đ/lần", Fee(200000)),
    ("Lệ phí: 100.000 đồng/hồ sơ", Fee(100000)),
    ("8.000 đồng/bản sao Trích lục", Fee(8000, "copy")),
    ("10.000 đồng/bản", Fee(10000, "copy")),
    ("2.000 đồng/trang", Fee(2000, "page")),
    ("100 nghìn đồng", Fee(100000)),
    ("1 triệu đồng", Fee(1000000)),
    ("50000", Fee(50000)),  # a spreadsheet's number
    ("50.000", Fee(50000)),
    ("1.500.000 đồng/giấy", Fee(1500000, "copy")),
    ("2.000 đồng/trang đối với trang thứ nhất, trang thứ hai; từ trang thứ ba trở lên thu 1.000 đồng/trang, "
     "nhưng mức thu tối đa không quá 200.000 đồng/bản", Fee(2000, "page", ((2000, 2), (1000, None)), 200000)),
    ("Trang thứ nhất và trang thứ hai: 2.000 đồng/trang; trang thứ ba trở đi: 1.000 đồng/trang",
     Fee(2000, "page", ((2000, 2), (1000, None)))),
])
def test_fees_the_database_writes(text, fee):
    assert parse_fee(text).default == fee


def test_fees_per_channel():
    read = parse_fee("Trực tiếp: 50.000 đồng/hồ sơ; Trực tuyến: 25.000 đồng/hồ sơ")
    assert read.default == Fee(50000)
    assert read.channels == {"online": Fee(25000)}


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("Theo quy định", "no amount"),
    ("Lệ phí: 50.000 đồng; Phí thẩm định: 100.000 đồng", "2 amounts"),
    ("Tối đa 50.000 đồng", "ceiling"),
    ("Không quá 100.000 đồng/hồ sơ", "ceiling"),
    ("2.000 đồng/trang đối với trang thứ nhất; từ trang thứ ba trở lên thu 1.000 đồng/bản", "two prices per page"),
])
def test_fees_it_does_not_read(text, reason):
    with pytest.raises(Unreadable, match=reason):
        parse_fee(text)
