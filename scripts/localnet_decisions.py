"""One uid's decisions in the same windows across local-subnet runs (docs/scoring_record.md).

    python scripts/localnet_decisions.py --uid 1 --windows 5,15 docs/img/readme_3_miners_16w_*_summary.json
    python scripts/localnet_decisions.py --uid 1 --windows 5,15 --dataset RUN/dataset RUN/summary.json

Reads the ``windows`` records of ``seed-localnet`` summaries (``summary.json`` of a run folder)
and prints, per run, the fit z and control-page gain of each uid's decision in the chosen
windows, and whether the chosen uid's gain was the lowest of its window. Page assignment is a
pure function of (window, uid) and the run's data seed, so every local run gives a uid the same
pages: ``--dataset`` (a run's prepared dataset folder) prints their ids and first characters.
Prints one JSON object (``--json``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIT = re.compile(r"fit z ([+-]?[\d.]+)")
GAIN = re.compile(r"gain ([+-]?[\d.e-]+)")
HARM = re.compile(r"raises the control-page loss by ([\d.e-]+)")


def parse(text: str | None) -> dict | None:
    """fit z, control gain and harm of one decision line (None: no decision)."""
    if not text:
        return None
    fit, gain, harm = FIT.search(text), GAIN.search(text), HARM.search(text)
    out = {"fit_z": float(fit.group(1)) if fit else None, "harmful": harm is not None}
    out["gain"] = -float(harm.group(1)) if harm else float(gain.group(1)) if gain else None
    return out


def run_decisions(summary: dict, windows: list[int]) -> dict[int, dict[str, dict | None]]:
    by_window = {
        r.get("window"): r.get("decisions") or {}
        for r in summary.get("windows", [])
        if isinstance(r, dict)
    }
    return {w: {u: parse(t) for u, t in by_window[w].items()} for w in windows if w in by_window}


def run_hparams(dataset: str, given: str | None) -> str:
    """The preset the run trained: ``given``, else the ``hparams`` of the ``network.json`` in
    the dataset folder's run folder (page ids map to text through the preset's page size)."""
    if given:
        return given
    network = Path(dataset).resolve().parent / "network.json"
    try:
        return str(json.loads(network.read_text())["hparams"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(
            f"cannot read the run's preset from {network} ({e}); pass --hparams"
        ) from e


def pages_text(dataset: str, windows: list[int], uid: int, hparams: str) -> dict[int, dict]:
    from template.hparams import load_hparams
    from template.training.pages import PageDataset
    from template.training.shards import TokenStream
    from template.training.tokenizer import ByteTokenizer

    hp = load_hparams(hparams)
    ds, tok = PageDataset(TokenStream(dataset), hp), ByteTokenizer()
    out = {}
    for w in windows:
        pages = ds.layout.pages(w, uid, hp.pages_per_window)
        text = tok.decode(ds.sequences(pages)[:, :-1].reshape(-1).tolist())
        out[w] = {"pages": pages, "start": text[:200]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("summaries", nargs="+")
    p.add_argument("--uid", type=int, default=1)
    p.add_argument("--windows", default="5,15")
    p.add_argument("--dataset", help="a run's dataset folder: print the uid's pages")
    p.add_argument(
        "--hparams", help="the run's preset (name or file; default: from the run's network.json)"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    windows = [int(x) for x in args.windows.split(",")]
    uid = str(args.uid)
    runs, lowest = {}, {w: 0 for w in windows}
    for path in args.summaries:
        got = run_decisions(json.loads(Path(path).read_text()), windows)
        if len(got) < len(windows) or not all(got[w].get(uid) for w in windows):
            continue  # an older summary without per-window decisions
        runs[path] = got
        for w, decisions in got.items():
            gains = {u: d["gain"] for u, d in decisions.items() if d and d["gain"] is not None}
            if uid in gains and gains[uid] == min(gains.values()):
                lowest[w] += 1
    out = {
        "command": " ".join(sys.argv),
        "uid": args.uid,
        "runs": runs,
        "runs_with_decisions": len(runs),
        "uid_lowest_gain": lowest,
        "uid_negative_gain": {
            w: sum(1 for r in runs.values() if ((r[w].get(uid) or {}).get("gain") or 0) < 0)
            for w in windows
        },
        "uid_fit_z": {
            w: [(r[w].get(uid) or {}).get("fit_z") for r in runs.values()] for w in windows
        },
    }
    if args.dataset:
        hparams = run_hparams(args.dataset, args.hparams)
        out["hparams"] = hparams
        out["pages"] = pages_text(args.dataset, windows, args.uid, hparams)
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
