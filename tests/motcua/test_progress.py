from motcua.progress import progress


def test_a_log_gets_one_line_per_tenth_of_the_way_not_a_frame_per_step(capsys):
    for done in range(1, 201):
        progress("dossiers", done, 200)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10
    assert lines[0] == "dossiers [###" + "." * 27 + "] 20/200"
    assert lines[-1] == "dossiers [##############################] 200/200"
