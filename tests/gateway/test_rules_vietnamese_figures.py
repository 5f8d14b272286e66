"""Figures as the pages write them in Vietnamese: decimal comma, thousands dot, sizes rounded up."""
import pytest

from services.gateway import pages_vi


@pytest.mark.parametrize("value, places, expected", [
    (5.333, 2, "5,33"), (1250.5, 1, "1.250,5"), (0.0, 2, "0,00"), (None, 2, "—")])
def test_decimals(value, places, expected):
    assert pages_vi.decimal(value, places) == expected


@pytest.mark.parametrize("size, expected", [
    (45, "45 byte"), (12_800, "12,5 KB"), (5 * 1024 * 1024, "5 MB"), (5 * 1024 * 1024 + 9, "5,1 MB")])
def test_file_sizes_never_read_as_the_limit_when_over_it(size, expected):
    assert pages_vi.file_size(size) == expected


@pytest.mark.parametrize("seconds, expected", [(42, "42 giây"), (60, "1 phút"), (61, "2 phút"), (900, "15 phút")])
def test_the_wait_said_is_the_throttles_rounded_up(seconds, expected):
    assert pages_vi.waiting(seconds) == f"Vui lòng thử lại sau {expected}."
