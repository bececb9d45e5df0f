"""``python -m template.chain.devchain show ...``: print a running dev chain's state as tables."""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request

VIEWS = ("blocks", "neurons", "weights", "incentive", "subnet")


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{url}: {e.code} {e.read().decode(errors='replace')}") from None
    except OSError as e:
        raise SystemExit(f"cannot reach the dev chain at {url}: {e}") from None


def table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, bool):
        return "yes" if v else "-"
    return str(v)


def _short(ss58: str) -> str:
    return ss58[:8] + "…" if len(ss58) > 9 else ss58


def render(url: str, view: str, netuid: int | None = None, last: int = 20) -> str:
    """The text of one view of the chain at ``url``."""
    url = url.rstrip("/")
    info = _get(url + "/info")
    netuid = info["genesis_netuid"] if netuid is None else netuid
    if view == "blocks":
        rows = _get(f"{url}/blocks?last={last}")
        fmt = "%Y-%m-%d %H:%M:%S"
        body = [
            [b["number"], f"{b['timestamp']:.3f}", time.strftime(fmt, time.gmtime(b["timestamp"]))]
            for b in rows
        ]
        return table(["block", "unix time", "utc"], body)
    if view == "subnet":
        d = _get(f"{url}/subnets/{netuid}")
        keys = ("owner", "owner_hotkey", "owner_uid", "last_epoch", "epoch_index")
        rows = [[k, d.get(k)] for k in keys]
        return table(["param", "value"], rows + [[k, v] for k, v in d["params"].items()])
    if view == "weights":
        rows = _get(f"{url}/subnets/{netuid}/weights")
        return table(["src uid", "dst uid", "weight"], [[r["src"], r["dst"], r["w"]] for r in rows])
    mg = _get(f"{url}/subnets/{netuid}/metagraph")
    if view == "incentive":
        cols = ["uid", "hotkey", "incentive", "dividends", "consensus", "trust", "emission"]
        body = [[n["uid"], _short(n["hotkey"])] + [n[c] for c in cols[2:]] for n in mg["neurons"]]
        return f"netuid {netuid} at block {mg['block']}\n" + table(cols, body)
    cols = ["uid", "hotkey", "coldkey", "stake", "validator_permit", "registered_at", "last_update"]
    body = [
        [n["uid"], _short(n["hotkey"]), _short(n["coldkey"])] + [n[c] for c in cols[3:]]
        for n in mg["neurons"]
    ]
    return f"netuid {netuid} at block {mg['block']}\n" + table(cols, body)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m template.chain.devchain show")
    p.add_argument("view", nargs="?", default="neurons", choices=VIEWS)
    p.add_argument("--url", default="http://127.0.0.1:9946")
    p.add_argument("--netuid", type=int, default=None, help="default: the genesis subnet")
    p.add_argument("--last", type=int, default=20, help="blocks view: how many recent blocks")
    a = p.parse_args(argv)
    print(render(a.url, a.view, a.netuid, a.last))
