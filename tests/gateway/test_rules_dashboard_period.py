"""The dashboard's quick picks of the period, as plain dates (pure: no service)."""
from datetime import date

import pytest

from services.gateway.pages_dashboard import PERIODS, quick_pick

SUNDAY = date(2026, 12, 6)


@pytest.mark.parametrize("name, expected", [
    ("today", (SUNDAY, SUNDAY)),
    ("week", (date(2026, 11, 30), SUNDAY)),  # from Monday
    ("month", (date(2026, 12, 1), SUNDAY)),
    ("quarter", (date(2026, 10, 1), SUNDAY)),
    ("year", (date(2026, 1, 1), SUNDAY)),
    ("last_quarter", (date(2026, 7, 1), date(2026, 9, 30))),
])
def test_each_quick_pick_is_its_first_and_last_day(name, expected):
    assert quick_pick(name, SUNDAY) == expected


def test_last_quarter_in_the_first_quarter_is_last_years_fourth():
    assert quick_pick("last_quarter", date(2027, 2, 10)) == (date(2026, 10, 1), date(2026, 12, 31))


def test_every_quick_pick_has_a_window():
    assert all(quick_pick(name, SUNDAY)[0] <= SUNDAY for name in PERIODS)
