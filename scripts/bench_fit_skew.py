"""How skewed per-sequence figures move a non-trainer's fit z (docs/scoring_record.md).

    python scripts/bench_fit_skew.py --json

Draws null samples (own and control figures from one distribution, so no signal) of
lognormal figures, mirrored for negative skew, with a per-page part on the own sample's
pages, and reads them through ``Measurement.fit_z``: the mean z and its tail above the
judge's bar for each skewness and own-sample design (pages x sequences per page) against 36
control sequences of distinct pages. Prints one JSON object (``--json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.validator.measure import Measurement  # noqa: E402

BAR = 2.326  # z(0.99), the judge's bar at alpha 0.01


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sigmas", default="0.3,0.6", help="lognormal sigmas (skewness grows)")
    p.add_argument("--designs", default="8x2,6x6", help="own pages x sequences per page")
    p.add_argument("--control", type=int, default=36)
    p.add_argument("--draws", type=int, default=6000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    rows = []
    for sigma in (float(x) for x in args.sigmas.split(",")):
        pop = torch.exp(torch.randn(400_000, generator=g) * sigma)
        mu, d = float(pop.mean()), pop - pop.mean()
        skew = float(d.pow(3).mean() / d.pow(2).mean() ** 1.5)
        for sign in (1.0, -1.0):
            for design in args.designs.split(","):
                pages, per = (int(x) for x in design.split("x"))

                def draw(n: int, sign: float = sign, sigma: float = sigma) -> torch.Tensor:
                    return sign * torch.exp(torch.randn(n, generator=g) * sigma)

                zs = []
                for _ in range(args.draws):
                    page_part = 0.5 * draw(pages).repeat_interleave(per)
                    own = (page_part + draw(pages * per) - 1.5 * sign * mu).double()
                    ctrl = (
                        0.5 * draw(args.control) + draw(args.control) - 1.5 * sign * mu
                    ).double()
                    own_pages = tuple(q for q in range(pages) for _ in range(per))
                    ctrl_pages = tuple(range(1000, 1000 + args.control))
                    m = Measurement(0, 1.0, own_pages, own, ctrl, ctrl, 0.0, ctrl_pages)
                    zs.append(m.fit_z)
                rows.append(
                    {
                        "skewness": round(sign * skew, 2),
                        "design": design,
                        "mean_z": round(statistics.mean(zs), 3),
                        "sd_z": round(statistics.stdev(zs), 3),
                        "above_bar": round(sum(z > BAR for z in zs) / len(zs), 4),
                    }
                )
    out = {"command": " ".join(sys.argv), "draws": args.draws, "bar": BAR, "rows": rows}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
