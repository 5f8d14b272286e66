"""The synthetic province at a real province's scale (bench/province.py): every service's loader
validates it, and `make run`'s embedded platform starts on it (MOTCUA_CATALOG_DIR) and answers."""
from collections import Counter
from datetime import date

import pytest
import requests

from bench import province
from motcua.catalog import load_agencies
from services.gateway.accounts import demo_accounts
from services.gateway.users import agency_tree
from services.intake.catalog import Catalog
from services.notify.settings import load_agency_offices
from services.workflow.processes import load_processes
from tests import infra


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    target = tmp_path_factory.mktemp("province") / "catalog"
    province.write(target)
    return target


def test_every_service_loads_it_at_scale(directory):
    catalog = Catalog.load(directory)  # intake
    assert len(catalog.versions) == 2000 and len(catalog.current(date(2026, 6, 1))) == 2000
    assert sum(len(v) for v in catalog.versions.values()) == 2200  # a tenth in a second version
    agencies = load_agencies(directory)  # reporting
    assert len(agencies) == 1000
    levels = Counter(a["level"] for a in agencies)
    assert levels["commune"] == 100 and levels["province"] == 1
    assert len(agency_tree(str(directory)).subtree("000.00.00.H99")) == 1000  # gateway
    assert len(load_agency_offices(directory)[0]) == 1000  # notify
    processes = load_processes(directory, "Asia/Ho_Chi_Minh")  # workflow
    routed = [processes.process(code) for code in catalog.versions]
    across = [p for p in routed if len({s.agency.code or s.agency.under for s in p.steps}) > 1]
    assert 100 < len(across) < 1000  # the multi-agency ones (liên thông)
    assert any(s.agency.serving == "receiving" for p in across for s in p.steps)


def test_the_demo_accounts_of_a_thousand_agencies(directory):
    import yaml
    demo = yaml.safe_load((directory / "demo-users.yaml").read_text(encoding="utf-8"))
    assert len(demo_accounts(demo, load_agencies(directory))) == 1 + 4 * 1000


def test_make_run_starts_on_it(directory, tmp_path):
    with infra.embedded_platform_process(tmp_path, {"MOTCUA_CATALOG_DIR": str(directory)}) as (_process, base):
        found = requests.get(f"{base}/api/v1/procedures", params={"q": "giay phep xay dung"}, timeout=30)
        assert found.status_code == 200, found.text
        items = found.json()
        assert len(items) > 5 and all("giấy phép xây dựng" in p["name"].lower() for p in items[:5])
        first = requests.get(f"{base}/api/v1/procedures", params={"q": "giay phep xay dung", "limit": 5}, timeout=30)
        assert first.json() == items[:5]  # the best five, in the same order
        bad = requests.get(f"{base}/api/v1/procedures", params={"limit": 0}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "limit"
        page = requests.get(f"{base}/thu-tuc", params={"q": "t"}, timeout=30)  # nearly all 2,000 match
        assert page.status_code == 200 and page.text.count("<li class=\"procedure\">") == 100 and "gõ thêm từ" in page.text
        agencies = requests.get(f"{base}/api/v1/agencies", timeout=30)
        assert agencies.status_code == 200
