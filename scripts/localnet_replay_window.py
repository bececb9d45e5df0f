"""Replay one window's measurements of a local-subnet run, offline, from its journalled S3.

    python scripts/localnet_replay_window.py RUN --window 15 --json

A local subnet's S3 server journals every object written (``RUN/s3-journal.jsonl``): the
leader's checkpoints and aggregates, and each miner's sealed upload and its key. This script
rebuilds the global model the leader measured ``--window`` on (its newest checkpoint before
the window, then its aggregates), opens the miners' uploads of the window, and measures each
one as the validator did: the same dataset, sample secret, scale and clip, so each upload's
control-page gain and harm z come out as the validator's log has them when it ran with the
default ``--eval.*`` flags (``matches_log`` checks it; a boosted measurement (``more
sequences``) is replayed boosted; the fit z also needs the crowd the leader chose,
``--crowd``; the scale counts the miners with an upload in the windows the validator's cache
held). Then, to say *why*:

- the gain on ``--large`` more control pages (none claimed in the window), and at a half and
  a quarter of the measured size;
- the parameter tensors whose part of the delta, applied alone, lowers the gain most (on the
  large sample's first 100 sequences), and for an upload that raises the loss the rows of the
  worst one (for ``lm_head.weight`` or the embedding, a row is a token);
- the outer step (``apply_uploads``) of all the window's uploads, and of all but each one.

Diagnosis only (docs/scoring_record.md, "Why an honest upload was harmful"): nothing here
is a node's code path. Prints one JSON object with ``--json``, else a few lines.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.hparams import hparams_hash, load_hparams  # noqa: E402
from template.protocol.aggregation import apply_uploads, clip_factors, decode_peer_uploads  # noqa: E402
from template.protocol.catchup import aggregate_size_cap, apply_aggregate, load_checkpoint  # noqa: E402
from template.protocol.documents import (  # noqa: E402
    checkpoint_size_cap,
    decode_aggregate,
    decode_checkpoint,
)
from template.storage import keys  # noqa: E402
from template.storage.persistent_s3 import Journal, compact  # noqa: E402
from template.training.model import build_model, param_shapes  # noqa: E402
from template.training.pages import PageDataset  # noqa: E402
from template.training.seal import SealError, unseal_upload  # noqa: E402
from template.training.shards import TokenStream  # noqa: E402
from template.validator.args import ValidatorConfig  # noqa: E402
from template.validator.cache import KEEP_WINDOWS  # noqa: E402
from template.validator.measure import (  # noqa: E402
    Measurer,
    control_sequences,
    delta_applied,
    sequence_losses,
)

SCAN_SEQS = 100  # the large sample's first sequences, for the scan of tensors


def stored_objects(run: Path) -> dict[str, bytes]:
    """'/bucket/key' -> the bytes last written there (the journal's live objects)."""
    out: dict[str, bytes] = {}
    for e in compact(Journal(run / "s3-journal.jsonl").entries()):
        if e["method"] == "PUT" and e["body"]:
            out[e["path"]] = base64.b64decode(e["body"])
    return out


def logged_decisions(log: Path, window: int) -> dict[int, dict]:
    """uid -> {gain, boosted} of ``window`` as the validator's log has them (its last run)."""
    pattern = re.compile(rf"window {window}: uid (\d+): .*?gain ([+-][0-9.e+-]+)")
    out: dict[int, dict] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "validator.judge" in line and (m := pattern.search(line)):
            text = m.group(2).rstrip(",")
            decimals = len(text.split(".")[1]) if "." in text else 0
            out[int(m.group(1))] = {
                "gain": float(text),
                "tolerance": 0.51 * 10.0**-decimals,  # the log's rounding
                "boosted": line.rstrip().endswith("more sequences"),
            }
    return out


def rebuild_model(objs: dict[str, bytes], bucket: str, signer: str, hp, window: int):
    """The leader's model as it measured ``window``: its newest checkpoint before the window,
    then its aggregates through ``window - 1``."""
    model = build_model(hp.model)
    shapes = param_shapes(model)
    run_hash = hparams_hash(hp)
    prefix = f"/{bucket}/"
    taken = [
        w
        for path in objs
        if path.startswith(prefix)
        and path.endswith("/model.safetensors")
        and (kw := keys.window_of_key(path[len(prefix) :])) is not None
        and kw[0] == "checkpoints"
        and (w := kw[1]) < window
    ]
    if not taken:
        raise SystemExit(f"no checkpoint of {bucket} before window {window} in the journal")
    start = max(taken)
    ckpt = decode_checkpoint(
        objs[f"/{bucket}/{keys.checkpoint_key(start)}"],
        max_bytes=checkpoint_size_cap(shapes),
        param_shapes=shapes,
        signer=signer,
        hparams_hash=run_hash,
    )
    load_checkpoint(model, ckpt)
    last_peers: list[int] = []
    for w in range(ckpt.window + 1, window):
        blob = objs.get(f"/{bucket}/{keys.aggregate_key(w)}")
        if blob is None:  # the leader published none: the nodes applied the bootstrap rule
            raise SystemExit(
                f"no aggregate of window {w} in the journal (a window the leader did not "
                "publish): its model cannot be rebuilt from the journal alone"
            )
        agg = decode_aggregate(
            blob,
            max_bytes=aggregate_size_cap(hp, shapes),
            signer=signer,
            hparams_hash=run_hash,
            window=w,
        )
        apply_aggregate(model, agg, hp)
        last_peers = [uid for uid, _ in agg.peers]
    return model, last_peers


def window_uploads(objs: dict[str, bytes], miners: list[dict], window: int, hp, shapes) -> dict:
    """uid -> the miner's decoded upload of ``window`` (opened with its revealed key)."""
    out = {}
    for n in miners:
        uid, hotkey, bucket = n["uid"], n["hotkey"], n["bucket"]
        sealed = objs.get(f"/{bucket}/{keys.upload_key(hotkey, window)}")
        key = objs.get(f"/{bucket}/{keys.reveal_key(hotkey, window)}")
        if sealed is None or key is None:
            continue
        try:
            blob = unseal_upload(sealed, key, window=window, hotkey=hotkey)
        except SealError as e:
            print(f"uid {uid}: its upload does not open ({e}): left out", file=sys.stderr)
            continue
        got = decode_peer_uploads([blob], [(uid, hotkey)], window, hp, shapes)
        if got:
            out[uid] = got[0]
    return out


def active_uids(objs: dict[str, bytes], miners: list[dict], window: int) -> set[int]:
    """The uids with an upload in the journal in a window the validator's cache held while it
    measured ``window`` (``cache.KEEP_WINDOWS``, through ``window``): its ``cache.active()``,
    by which the measurement's scale divides."""
    held = range(max(0, window - KEEP_WINDOWS + 1), window + 1)
    return {
        n["uid"]
        for n in miners
        for w in held
        if f"/{n['bucket']}/{keys.upload_key(n['hotkey'], w)}" in objs
    }


def mean_gain(model, seqs, before, delta, scale: float) -> float:
    """The mean loss drop on ``seqs`` with ``delta`` applied at ``scale``."""
    with delta_applied(model, delta, scale):
        return float((before - sequence_losses(model, seqs)).mean())


def replay(
    run: Path, window: int, large: int, tensors: int, crowd: list[int] | None = None
) -> dict:
    for need in ("network.json", "s3-journal.jsonl"):
        if not (run / need).is_file():
            raise SystemExit(f"{run / need} is missing: give a local subnet's run folder")
    net = json.loads((run / "network.json").read_text())
    hp = load_hparams(net["hparams"])
    leader = next(n for n in net["nodes"] if n["role"] == "validator")
    miners = [n for n in net["nodes"] if n["role"] == "miner"]
    objs = stored_objects(run)
    model, last_peers = rebuild_model(objs, leader["bucket"], leader["hotkey"], hp, window)
    ups = window_uploads(objs, miners, window, hp, param_shapes(model))
    if not ups:
        raise SystemExit(f"no upload of window {window} in {run}/s3-journal.jsonl")
    cfg = ValidatorConfig()
    state = Path(leader["state_dir"])
    if not (state / "sample_secret").is_file():
        raise SystemExit(f"{state / 'sample_secret'} is missing: the validator's sample secret")
    secret = (state / "sample_secret").read_text().strip()
    folder = next(p.parent for p in (state / "dataset").rglob("manifest.json"))
    dataset = PageDataset(TokenStream(folder), hp)
    # the validator's scale: the outer lr over the uids uploading lately (at most the peers per
    # window)
    active = active_uids(objs, miners, window) | set(ups)
    scale = cfg.eval_lr_scale * hp.outer.lr / max(1, min(len(active), hp.window.peers_per_window))
    clip = clip_factors(ups, hp, last_peers)
    measurer = Measurer(
        model,
        dataset,
        own=cfg.eval_own_seqs,
        control=cfg.eval_control_seqs,
        salt=secret,
        control_pool=cfg.eval_control_pool,
    )
    measurer.begin_window(window, list(ups.values()), scale, clip, crowd)
    logged = logged_decisions(Path(leader["log"]), window)
    claims = {p for u in ups.values() for p in u.pages}
    _, seqs = control_sequences(dataset, large, window, "replay: large control", claims)
    before = sequence_losses(model, seqs)
    out: dict = {"run": str(run), "window": window, "scale": scale, "uids": {}}
    for uid in sorted(ups):
        boost = cfg.eval_boost if logged.get(uid, {}).get("boosted") else 1
        m = measurer.measure(ups[uid], boost=boost)
        delta, size = ups[uid].delta.sparse(), scale * clip[uid]
        with delta_applied(model, delta, size):
            g = before - sequence_losses(model, seqs)
        few, few_before = seqs[:SCAN_SEQS], before[:SCAN_SEQS]
        parts = (
            sorted(
                (mean_gain(model, few, few_before, {name: part}, size), name)
                for name, part in delta.items()
            )
            if tensors > 0
            else []
        )
        rows = []
        if parts and float(g.mean()) < 0:  # harmful: which rows of its worst tensor
            name = parts[0][1]
            idx, val = delta[name]
            width = math.prod(model.get_parameter(name).shape[1:])
            rows = sorted(
                (
                    mean_gain(model, few, few_before, {name: (idx[sel], val[sel])}, size),
                    int(r),
                )
                for r in torch.unique(idx // width)
                if (sel := idx // width == r).any()
            )[:tensors]
        log_gain = logged.get(uid, {}).get("gain")
        tolerance = logged.get(uid, {}).get("tolerance", 0.0)
        out["uids"][str(uid)] = {
            "gain": m.control_mean,
            "harm_z": m.harm_z,
            "fit_z": m.fit_z,
            "logged_gain": log_gain,
            "matches_log": None
            if log_gain is None
            else abs(m.control_mean - log_gain) <= tolerance,
            "clip": clip[uid],
            "large_gain": float(g.mean()),
            "large_gain_se": float(g.std()) / math.sqrt(g.numel()),
            "large_share_raised": float((g < 0).float().mean()),
            "large_gain_at_half": mean_gain(model, seqs, before, delta, size / 2),
            "large_gain_at_quarter": mean_gain(model, seqs, before, delta, size / 4),
            "worst_tensors": [[name, gain] for gain, name in parts[:tensors]],
            "worst_rows_of_worst_tensor": [[row, gain] for gain, row in rows],
        }
    base = float(before.mean())

    def stepped(uids: list[int]) -> float:
        m2 = copy.deepcopy(model)
        apply_uploads(m2, [ups[u] for u in uids], hp)
        return base - float(sequence_losses(m2, seqs).mean())

    everyone = sorted(ups)
    out["outer_step_gain"] = stepped(everyone)
    out["outer_step_gain_without"] = {
        str(u): stepped([v for v in everyone if v != u]) for u in everyone if len(everyone) > 1
    }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a local subnet's run folder (--run.dir)")
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--large", type=int, default=200, help="control pages of the large sample")
    p.add_argument("--tensors", type=int, default=3, help="worst tensors per upload (0: no scan)")
    p.add_argument(
        "--crowd",
        default="",
        help="uids whose uploads make the fit's reference, e.g. 1,2 (default: all; the gain and"
        " harm z do not depend on it, the fit z does)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    crowd = [int(u) for u in args.crowd.split(",") if u.strip()] or None
    out = replay(args.run, args.window, args.large, args.tensors, crowd)
    if args.json:
        print(json.dumps(out))
        return
    for uid, r in out["uids"].items():
        print(
            f"uid {uid}: gain {r['gain']:+.5f} (log {r['logged_gain']}), harm z {r['harm_z']:+.2f};"
            f" {args.large} pages {r['large_gain']:+.5f} ± {r['large_gain_se']:.5f}, at half"
            f" {r['large_gain_at_half']:+.5f}; worst tensors {r['worst_tensors']}"
        )
    print(f"outer step {out['outer_step_gain']:+.5f}, without: {out['outer_step_gain_without']}")


if __name__ == "__main__":
    main()
