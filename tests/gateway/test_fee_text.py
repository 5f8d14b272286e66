"""The portal says a procedure's fee as the catalogue models it: flat, free, or by tiers of pages with a cap."""
from services.gateway import pages_vi
from services.intake.catalog import Catalog
from tests.intake.test_catalog import SOURCE


def test_fees_read_as_the_portal_says_them():
    catalog = Catalog.load(SOURCE)
    assert pages_vi.fee(catalog.procedure("2.000635").summary()) == "8.000 đồng/bản"
    assert pages_vi.fee(catalog.procedure("1.001193").summary()) == "Miễn phí"
    assert pages_vi.fee(catalog.procedure("2.000884").summary()) == "10.000 đồng"
    assert pages_vi.fee(catalog.procedure("2.000815").summary()) == \
        "2.000 đồng/trang (trang 1–2), 1.000 đồng/trang (từ trang 3), tối đa 200.000 đồng/bản"
