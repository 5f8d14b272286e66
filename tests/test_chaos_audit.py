"""chaos.audit's figures on rows made here (the chaos runs themselves: tests/integration/test_chaos.py,
test_broker_cluster.py)."""
from types import SimpleNamespace

from chaos.audit import code_gaps, logs


class Rows:
    def __init__(self, *codes):
        self.codes = codes

    def query(self, service, sql):
        assert service == "intake"
        return [SimpleNamespace(code=code) for code in self.codes]


def test_code_gaps_counts_the_numbers_missing_from_each_agencys_day():
    complete = Rows("000.20.01.H56-261206-0001", "000.20.01.H56-261206-0002", "000.20.02.H56-261206-0001")
    assert code_gaps(complete) == {"total": 0, "examples": []}
    gapped = Rows("000.20.01.H56-261206-0001", "000.20.01.H56-261206-0004", "000.20.01.H56-261207-0002")
    assert code_gaps(gapped) == {"total": 3, "examples": [
        "000.20.01.H56-261206-0002", "000.20.01.H56-261206-0003", "000.20.01.H56-261207-0001"]}


def test_the_error_samples_are_read_from_json_and_text_log_lines(tmp_path):
    (tmp_path / "intake.log").write_text("\n".join([
        '{"time": "2026-12-06T04:03:52Z", "level": "ERROR", "service": "intake", "logger": "motcua.outbox", '
        '"message": "outbox relay died"}',
        '{"time": "2026-12-06T04:03:53Z", "level": "INFO", "service": "intake", "logger": "x", "message": "fine"}',
        "2026-12-06 04:03:54,000 CRITICAL nameko.containers thread exited",
        "not a log line"]))
    assert logs(tmp_path)["error_samples"] == {
        "intake": ["ERROR motcua.outbox: outbox relay died", "CRITICAL nameko.containers thread exited"]}
