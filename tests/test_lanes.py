"""`make test`'s lanes (tests/lanes.py): every file dealt once, the lanes' seconds close, progress read
off pytest's output, a lane stopped whole."""
import subprocess
import sys
import time

import pytest

from tests import lanes


def test_every_file_goes_to_exactly_one_lane_and_the_lanes_end_close_together():
    files = lanes.test_files()
    dealt = lanes.deal(files, 2)
    assert sorted(name for lane in dealt for name in lane) == sorted(files)
    seconds = [sum(lanes.seconds_of(name) for name in lane) for lane in dealt]
    assert abs(seconds[0] - seconds[1]) <= max(lanes.seconds_of(name) for name in files) // 10
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

    def execv(program, argv):  # pytest takes this process's place: nothing after it runs
        calls.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(lanes.os, "chdir", lambda path: None)
    monkeypatch.setattr(lanes.os, "execv", execv)
    monkeypatch.setattr(lanes, "run_lanes", lambda options: calls.append(("lanes", options)) or 0)
    with pytest.raises(SystemExit):
        lanes.main(["-q", "tests/test_lanes.py"])
    assert calls[-1][-2:] == ["-q", "tests/test_lanes.py"] and calls[-1][1:3] == ["-m", "pytest"]
    assert lanes.main(["-q", "-p", "no:cacheprovider"]) == 0
    assert calls[-1] == ("lanes", ["-q", "-p", "no:cacheprovider"])


def test_a_lane_with_no_test_selected_has_not_failed_unless_none_ran():
    assert lanes.verdict({1: 0, 2: 0}) == (0, [])
    assert lanes.verdict({1: 0, 2: lanes.NO_TESTS_RAN}) == (0, [])  # -k matched files of lane 1 only
    assert lanes.verdict({1: lanes.NO_TESTS_RAN, 2: lanes.NO_TESTS_RAN}) == (lanes.NO_TESTS_RAN, [])
    assert lanes.verdict({1: 1, 2: lanes.NO_TESTS_RAN}) == (1, [1])
    assert lanes.verdict({1: 2, 2: 1}) == (1, [1, 2])  # interrupted, failed


def test_stopping_the_lanes_ends_each_lanes_whole_process_group(tmp_path):
    """A lane whose pytest ignores SIGINT, with a child of its own: both are gone after the grace."""
    script = ("import signal, subprocess, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(60)")
    pid_file = tmp_path / "child.pid"
    lane = subprocess.Popen([sys.executable, "-c", script, str(pid_file)], start_new_session=True)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    lanes._stop_lanes([lane], grace=0.5)
    assert lane.returncode == -9  # SIGINT ignored: SIGKILLed after the grace
    time.sleep(0.2)
    try:
        with open(f"/proc/{child}/stat") as stat:  # killed: a zombie until init reaps it, or gone
            assert stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        pass
