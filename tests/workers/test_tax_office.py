"""The example tax-office worker's rule, without a broker."""
from decimal import Decimal

import pytest

from workers.tax_office import IncompleteDeclaration, fee_notice


def test_fee_is_half_a_percent_of_the_land_value():
    notice = fee_notice({"land_area_m2": "120.5", "land_price_vnd_per_m2": 10_000_000})
    assert notice.fee == Decimal("6025000")  # 0.005 × 120.5 × 10,000,000
    assert notice.text == ("Thông báo nộp lệ phí trước bạ: 6.025.000 đồng "
                           "(0,5% × 120,5 m² × 10.000.000 đồng/m²)")


@pytest.mark.parametrize("form", [{}, {"land_area_m2": "x", "land_price_vnd_per_m2": 1},
                                  {"land_area_m2": 0, "land_price_vnd_per_m2": 1}])
def test_an_incomplete_declaration_is_refused_not_guessed(form):
    with pytest.raises(IncompleteDeclaration):
        fee_notice(form)
