"""`make test`'s lanes (tests/lanes.py): every file dealt once, the lanes' seconds close, progress read
off pytest's output."""
from tests import lanes


def test_every_file_goes_to_exactly_one_lane_and_the_lanes_end_close_together():
    files = lanes.test_files()
    dealt = lanes.deal(files, 2)
    assert sorted(name for lane in dealt for name in lane) == sorted(files)
    seconds = [sum(lanes.SECONDS.get(name, 1) for name in lane) for lane in dealt]
    assert abs(seconds[0] - seconds[1]) <= max(lanes.SECONDS.get(name, 1) for name in files) // 10
    assert all(name in files for name in lanes.SECONDS), "a file measured in SECONDS is gone: update it"


def test_the_longest_files_are_dealt_first_each_to_the_lane_with_the_fewest_seconds(monkeypatch):
    monkeypatch.setattr(lanes, "SECONDS", {"a.py": 10, "b.py": 9, "c.py": 3})
    # a (10) and b (9) open the lanes, c (3) joins b's (12), d (1, unlisted) then a's (11).
    assert lanes.deal(["d.py", "c.py", "b.py", "a.py"], 2) == [["a.py", "d.py"], ["b.py", "c.py"]]


def test_progress_counts_outcomes_and_failures_not_other_output(tmp_path):
    log = tmp_path / "lane.log"
    log.write_text("..F.s [ 10%]\n[embedded bus] 200 sequential RPC calls: 2419/s\n..E.\n")
    assert lanes.progress(log) == "9 tests done, 2 failed"
    assert lanes.progress(tmp_path / "not-yet.log") == "0 tests done"
    log.write_text(".")
    assert lanes.progress(log) == "1 test done"


def test_paths_given_run_one_pytest_as_before(monkeypatch):
    calls = []
    monkeypatch.setattr(lanes.subprocess, "call", lambda command, cwd: calls.append(command) or 0)
    monkeypatch.setattr(lanes, "run_lanes", lambda options: calls.append(("lanes", options)) or 0)
    assert lanes.main(["-q", "tests/test_lanes.py"]) == 0
    assert calls[-1][-2:] == ["-q", "tests/test_lanes.py"] and calls[-1][1:3] == ["-m", "pytest"]
    assert lanes.main(["-q", "-p", "no:cacheprovider"]) == 0
    assert calls[-1] == ("lanes", ["-q", "-p", "no:cacheprovider"])
