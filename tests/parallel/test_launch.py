"""The rank launcher: every rank gets its place, rank 0's exit status is the node's, and a rank
that fails stops the others."""

from __future__ import annotations

from template.parallel.launch import launch, main

# one write() per rank: three ranks share the captured stdout, and print() may write its parts
# separately (interleaved lines, seen once in a full test run)
SHOW = (
    "import os; e = os.environ; "
    "os.write(1, f\"{e['RANK']} {e['WORLD_SIZE']} {e['MASTER_PORT']}\\n\".encode())"
)


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


def test_localnet_runs_the_first_miner_and_validator_as_ranks(tmp_path):
    """``--miner.ranks`` / ``--validator.ranks``: the first node of that role starts under the
    rank launcher, every other node as one process."""
    from template.localnet.config import LocalnetConfig
    from template.localnet.setup import Network, NodeSpec, neuron_command

    cfg = LocalnetConfig(run_dir=tmp_path, miner_ranks=1, validator_ranks=3)
    nodes = [NodeSpec(f"{r}-{i}", r, f"{r}{i}") for r in ("miner", "validator") for i in (0, 1)]
    net = Network(str(tmp_path), "ws://x", "http://s3", 1, 1.0, "tiny", nodes=nodes)
    launched = {
        n.name: neuron_command(cfg, net, n)[1:6]
        == ["-m", "template.parallel.launch", "--ranks", "3", "--"]
        for n in nodes
    }
    assert launched == {
        "miner-0": False,
        "miner-1": False,
        "validator-0": True,
        "validator-1": False,
    }


async def test_a_repeated_signal_does_not_cut_a_validators_clean_up():
    """Under the launcher a group SIGTERM reaches rank 0 twice (directly and forwarded): the
    second must neither cancel the clean-up nor, once the run is over, kill the process."""
    import asyncio
    import os
    import signal

    from template.validator.startup import _run_until_signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cleaned = []

    async def work():
        try:
            await asyncio.sleep(30)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the second copy, during the clean-up
            await asyncio.sleep(0.05)
            cleaned.append(True)

    try:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await _run_until_signal(work())
        assert cleaned == [True]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def test_a_finished_spawned_rank_leaves_with_status_0_and_its_output_but_no_teardown():
    import subprocess
    import sys

    code = (
        "import atexit, logging, sys\n"
        "from template.parallel.dist import leave_spawned_rank\n"
        "atexit.register(lambda: print('teardown ran'))\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
        "print('result written', end='')\n"
        "logging.getLogger('rank').info('closing')\n"
        "leave_spawned_rank()\n"
        "print('after leaving')\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout == "result written"  # flushed before leaving; no teardown, nothing after
    assert "closing" in got.stderr
