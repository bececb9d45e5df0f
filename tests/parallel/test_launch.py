"""The rank launcher: every rank gets its place, rank 0's exit status is the node's, and a rank
that fails stops the others."""

from __future__ import annotations

from template.parallel.launch import launch, main

SHOW = "import os; print(os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['MASTER_PORT'])"


def test_ranks_get_their_place(capfd):
    assert launch(3, ["-c", SHOW]) == 0
    lines = sorted(capfd.readouterr().out.split("\n"))[1:]
    assert [ln.split()[:2] for ln in lines] == [["0", "3"], ["1", "3"], ["2", "3"]]
    assert len({ln.split()[2] for ln in lines}) == 1  # one rendezvous port


def test_rank_zero_status_is_the_exit_status():
    code = "import os, sys; sys.exit(7 if os.environ['RANK'] == '0' else 0)"
    assert main(["--ranks", "2", "--", "-c", code]) == 7


def test_a_failing_rank_stops_rank_zero():
    code = "import os, sys, time\nif os.environ['RANK'] == '1': time.sleep(1.5); sys.exit(3)\ntime.sleep(60)\n"
    assert launch(2, ["-c", code]) == 143  # rank 0 was terminated (128 + SIGTERM)
    graceful = code.replace(
        "time.sleep(60)",
        "import signal; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(60)",
    )
    assert launch(2, ["-c", graceful]) == 1  # rank 0 stopped cleanly, but a rank failed
