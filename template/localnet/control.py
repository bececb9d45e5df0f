"""Stop, start or restart one node of a RUNNING local subnet, from another terminal.

    python scripts/localnet.py node restart miner-1              # the newest run under runs/
    python scripts/localnet.py node stop validator-0 --run.dir runs/localnet-20261201-073000
    python scripts/localnet.py node status

The command and the running ``localnet.py`` talk through files in ``<run>/control/`` (mode
0700, so only the run's user can drive it; no socket, no port): the command writes
``req-<id>.json``, the supervisor acts on it within a second and answers ``res-<id>.json``.
``node status`` reads ``<run>/supervisor.json``, which the supervisor rewrites every poll.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .supervisor import Supervisor

ACTIONS = ("stop", "start", "restart")
CONTROL = "control"
STATUS_FILE = "supervisor.json"


def control_dir(run_dir: Path) -> Path:
    d = Path(run_dir) / CONTROL
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    return d


def send(run_dir: Path, action: str, node: str, timeout: float = 60.0) -> dict[str, Any]:
    """Ask the supervisor of ``run_dir`` to act on ``node``; its answer, or a timeout error."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}")
    d = control_dir(run_dir)
    rid = uuid.uuid4().hex[:12]
    tmp = d / f".req-{rid}.tmp"
    tmp.write_text(json.dumps({"action": action, "node": node}))
    tmp.replace(d / f"req-{rid}.json")
    answer = d / f"res-{rid}.json"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if answer.is_file():
            out = json.loads(answer.read_text())
            answer.unlink(missing_ok=True)
            return out
        time.sleep(0.1)
    (d / f"req-{rid}.json").unlink(missing_ok=True)
    return {"ok": False, "message": f"no answer within {timeout:.0f}s: is the run still going?"}


def serve_requests(run_dir: Path, supervisor: Supervisor) -> list[str]:
    """(The running subnet.) Act on every pending request; returns the answers given."""
    d = control_dir(run_dir)
    answers = []
    for req in sorted(d.glob("req-*.json")):
        rid = req.stem.removeprefix("req-")
        try:
            body = json.loads(req.read_text())
            action, node = body["action"], body["node"]
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r}")
            message = getattr(supervisor, f"{action}_node")(str(node))
            out = {"ok": True, "message": message}
        except (KeyError, ValueError, TypeError, OSError) as e:
            out = {"ok": False, "message": str(e).strip("'\"")}
        req.unlink(missing_ok=True)
        tmp = d / f".res-{rid}.tmp"
        tmp.write_text(json.dumps(out))
        tmp.replace(d / f"res-{rid}.json")
        answers.append(out["message"])
    return answers


def newest_run(root: Path = Path("runs")) -> Path | None:
    runs = sorted(root.glob("localnet-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def node_main(argv: list[str]) -> int:
    """``localnet.py node {stop,start,restart,status} [NAME] [--run.dir DIR]``."""
    p = argparse.ArgumentParser(prog="localnet.py node", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=(*ACTIONS, "status"))
    p.add_argument("name", nargs="?", help="node name: miner-0, validator-1, chain, s3")
    p.add_argument(
        "--run.dir",
        dest="run_dir",
        type=Path,
        default=None,
        help="the run folder (default: the newest runs/localnet-*)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")
    args = p.parse_args(argv)
    run_dir = args.run_dir or newest_run()
    if run_dir is None or not (run_dir / "network.json").is_file():
        print(f"no local subnet run found ({run_dir or 'runs/localnet-*'})", file=sys.stderr)
        return 2
    if args.action == "status":
        path = run_dir / STATUS_FILE
        if not path.is_file():
            print(f"{path} not written yet", file=sys.stderr)
            return 1
        for name, h in json.loads(path.read_text()).items():
            came_back = " (crashed and came back)" if h.get("recovered") else ""
            print(
                f"{name:<12} {h['state']:<8} pid {h['pid']:<7} restarts {h['restarts']}"
                f" crashes {len(h['crashes'])}{came_back}"
            )
        return 0
    if not args.name:
        p.error(f"{args.action} needs a node name")
    out = send(run_dir, args.action, args.name, args.timeout)
    print(out["message"], file=sys.stdout if out["ok"] else sys.stderr)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(node_main(sys.argv[1:]))
