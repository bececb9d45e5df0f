"""An independent float64 reference of subtensor's epoch and emission payout, for tests.

Written step by step from ``pallets/subtensor/src/epoch/run_epoch.rs`` (``epoch_mechanism``,
the original and the Yuma3 bonds branches, liquid alpha off), ``epoch/math.rs`` (``is_topk_nonzero``,
``weighted_median`` with its partition search, sparse masks) and ``coinbase/run_coinbase.rs``
(owner cut, 50/50 split, withheld owner incentive). Plain lists and loops on purpose: it
shares no code and no structure with ``template/chain/devchain/yuma.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _normalize(x: list[float]) -> list[float]:
    total = sum(x)
    return [v / total for v in x] if total != 0 else list(x)


def is_topk_nonzero(vector: list[float], k: int) -> list[bool]:
    result = [v != 0 for v in vector]
    n = len(vector)
    if n < k:
        return result
    idxs = sorted(range(n), key=lambda i: vector[i])  # ascending, stable
    for idx in idxs[: n - k]:
        result[idx] = False
    return result


def weighted_median(stake, score, partition_idx, minority, lo, hi) -> float:
    current = list(partition_idx)
    limit = len(partition_idx)
    iterations = 0
    while True:
        n = len(current)
        if n == 0:
            return 0.0
        if n == 1:
            return score[current[0]]
        pivot = score[current[n // 2]]
        lo_stake = hi_stake = 0.0
        lower, upper = [], []
        for idx in current:
            if score[idx] == pivot:
                continue
            if score[idx] < pivot:
                lo_stake += stake[idx]
                lower.append(idx)
            else:
                hi_stake += stake[idx]
                upper.append(idx)
        if minority < lo + lo_stake and lower:
            current, hi = lower, lo + lo_stake
        elif hi - hi_stake <= minority and upper:
            current, lo = upper, hi - hi_stake
        else:
            return pivot
        iterations += 1
        if iterations > limit:
            return 0.0


def weighted_median_col_sparse(stake, rows: list[dict[int, float]], n: int, majority):
    use_stake = _normalize([s for s in stake if s > 0])
    stake_sum = sum(use_stake)
    minority = stake_sum - majority
    columns = [[0.0] * len(use_stake) for _ in range(n)]
    k = 0
    for s, row in zip(stake, rows, strict=True):
        if s > 0:
            for c, v in row.items():
                columns[c][k] = v
            k += 1
    idx = list(range(len(use_stake)))
    return [weighted_median(use_stake, col, idx, minority, 0.0, stake_sum) for col in columns]


@dataclass
class Subnet:
    """The chain state the epoch reads and writes between epochs."""

    n: int
    tempo: int
    kappa: float = 32767 / 65535
    bonds_moving_average: float = 0.9
    bonds_penalty: float = 1.0
    activity_cutoff: int = 5000
    max_allowed_validators: int = 64
    stake_threshold: float = 0.0
    owner_uid: int | None = None
    owner_cut: float = 0.18
    emission: float = 1.0
    yuma3: bool = False
    permits: list[bool] = field(default_factory=list)
    bonds: list[dict[int, float]] = field(default_factory=list)  # as stored (see run_epoch)
    last_epoch: int = 0


def run_epoch(
    net: Subnet,
    block: int,
    stake_raw: list[float],
    weights: list[dict[int, float]],
    last_update: list[int],
    registered_at: list[int],
) -> list[float]:
    """One epoch and its payout; updates ``net``; returns what each uid was paid."""
    n = net.n
    owner = net.owner_uid
    if len(net.permits) < n:
        net.permits += [False] * (n - len(net.permits))
        net.bonds += [{} for _ in range(n - len(net.bonds))]
    inactive = [last_update[i] + net.activity_cutoff < block for i in range(n)]
    stake = _normalize(
        [
            0.0 if (i != owner and stake_raw[i] < net.stake_threshold) else stake_raw[i]
            for i in range(n)
        ]
    )
    permits = list(net.permits)
    if owner is not None:
        permits[owner] = True
    new_permits = is_topk_nonzero(stake, net.max_allowed_validators)
    if owner is not None:
        new_permits[owner] = True
    active = _normalize([0.0 if inactive[i] or not permits[i] else stake[i] for i in range(n)])

    w = [dict(row) if permits[i] else {} for i, row in enumerate(weights)]
    for i in range(n):  # diagonal, except the owner's
        if i != owner:
            w[i].pop(i, None)
    for i in range(n):  # outdated: set before j registered
        w[i] = {j: v for j, v in w[i].items() if not last_update[i] <= registered_at[j]}
    for i in range(n):
        total = sum(w[i].values())
        w[i] = {j: v / total for j, v in w[i].items()} if total > 0 else {}

    consensus = weighted_median_col_sparse(active, w, n, net.kappa)
    clipped = [{j: min(v, consensus[j]) for j, v in row.items()} for row in w]
    ranks = [0.0] * n
    for i in range(n):
        for j, v in clipped[i].items():
            ranks[j] += v * active[i]
    incentive = _normalize(ranks)

    p = net.bonds_penalty
    wfb = [{j: w[i][j] + p * (clipped[i][j] - w[i][j]) for j in w[i]} for i in range(n)]
    last_tempo = net.last_epoch + 1 if net.last_epoch > 0 else block - net.tempo
    bonds = [
        {j: v for j, v in row.items() if not last_tempo <= registered_at[j]} for row in net.bonds
    ]
    alpha = 1.0 - net.bonds_moving_average
    if net.yuma3:  # per validator: EMA of its own bond weights, stored as proportions
        ema = _mat_ema(wfb, bonds, alpha)
        norm = _col_normalize(ema, n)
        per_validator = [sum(v * incentive[j] for j, v in norm[i].items()) for i in range(n)]
        dividends = _normalize([per_validator[i] * active[i] for i in range(n)])
        stored = ema
    else:  # stake-weighted delta, column-normalised; stored column max-upscaled
        bonds = _col_normalize(bonds, n)
        delta = _col_normalize([{j: v * active[i] for j, v in wfb[i].items()} for i in range(n)], n)
        ema = _col_normalize(_mat_ema(delta, bonds, alpha), n)
        dividends = _normalize([sum(v * incentive[j] for j, v in ema[i].items()) for i in range(n)])
        stored = _col_max_upscale(ema, n)

    emission_sum = sum(incentive) + sum(dividends)
    server = [x / emission_sum if emission_sum else 0.0 for x in incentive]
    validator = [x / emission_sum if emission_sum else 0.0 for x in dividends]
    if emission_sum == 0:
        validator = list(stake) if sum(active) == 0 else list(active)

    net.permits = new_permits
    net.bonds = [stored[i] if new_permits[i] else {} for i in range(n)]
    net.last_epoch = block
    return _payout(net, server, validator)


def _payout(net: Subnet, server: list[float], validator: list[float]) -> list[float]:
    rest = net.emission * (1 - net.owner_cut)
    server_alpha = rest * 0.5
    incentive_sum = sum(server)
    validator_alpha = rest * 0.5 if incentive_sum > 0 else rest
    vsum = sum(validator)
    paid = []
    for i in range(net.n):
        miner = server_alpha * server[i] / incentive_sum if incentive_sum > 0 else 0.0
        if i == net.owner_uid:
            miner = 0.0  # withheld: burned
        paid.append(miner + (validator_alpha * validator[i] / vsum if vsum > 0 else 0.0))
    return paid


def _mat_ema(new, old, alpha: float) -> list[dict[int, float]]:
    out = []
    for new_row, old_row in zip(new, old, strict=True):
        row = {j: alpha * v for j, v in new_row.items()}
        for j, v in old_row.items():
            row[j] = row.get(j, 0.0) + (1 - alpha) * v
        out.append({j: v for j, v in row.items() if v > 0})
    return out


def _col_normalize(rows: list[dict[int, float]], n: int) -> list[dict[int, float]]:
    sums = [0.0] * n
    for row in rows:
        for j, v in row.items():
            sums[j] += v
    return [{j: v / sums[j] for j, v in row.items() if sums[j] > 0} for row in rows]


def _col_max_upscale(rows: list[dict[int, float]], n: int) -> list[dict[int, float]]:
    top = [0.0] * n
    for row in rows:
        for j, v in row.items():
            top[j] = max(top[j], v)
    return [{j: v / top[j] for j, v in row.items() if top[j] > 0} for row in rows]
