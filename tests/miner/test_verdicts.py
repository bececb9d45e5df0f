"""A miner reads each validator's verdict on its upload at once, asks the silent ones again
when the peer list is due and at the end of the next window, and keeps the last verdicts it
got."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from template.hparams import load_hparams
from template.miner import loop
from template.miner.loop import Miner
from template.protocol.documents import Verdict
from template.protocol.windows import WindowClock

HP = load_hparams("tiny")
A, B = "5" + "A" * 47, "5" + "B" * 47


def _miner(answers: list[dict[str, Verdict]], monkeypatch):
    asked: list[tuple[int, set[str]]] = []
    waited: list[int] = []

    async def read(directory, hp, window, uid, skip=()):
        asked.append((window, set(skip)))
        return answers.pop(0) if answers else {}

    async def until(block: int) -> None:
        waited.append(block)

    monkeypatch.setattr(loop, "read_own_verdicts", read)
    m = SimpleNamespace(
        windows=WindowClock(HP.window),
        clock=SimpleNamespace(until=until),
        sync=SimpleNamespace(directory=SimpleNamespace(validators=lambda: [A, B])),
        settings=SimpleNamespace(hp=HP, uid=3),
        verdicts=(4, {A: "credited, window 4"}),
        written=0,
    )
    m.write_status = lambda: setattr(m, "written", m.written + 1)
    return m, asked, waited


def test_silent_validators_are_asked_again_and_the_verdicts_kept(monkeypatch):
    a = Verdict(3, "5" + "M" * 47, "credited", "", 0.02, 1.9, 4.5, 0.9, 0.7)
    b = Verdict(3, "5" + "M" * 47, "rejected", "harmful: harm z -4.72")
    m, asked, waited = _miner([{A: a}, {}, {B: b}], monkeypatch)
    asyncio.run(Miner._read_verdicts(m, 5))
    clock = WindowClock(HP.window)
    assert waited == [0, clock.publish_deadline(5) + 1, clock.end(6)]  # 0: at once
    assert asked == [(5, set()), (5, {A}), (5, {A})]  # B was silent: asked again, A not
    assert m.verdicts == (5, {A: str(a), B: str(b)}) and m.written == 1


def test_a_window_no_validator_answered_for_keeps_the_last_verdicts(monkeypatch):
    m, asked, _ = _miner([], monkeypatch)
    asyncio.run(Miner._read_verdicts(m, 5))
    assert len(asked) == 3 and m.verdicts == (4, {A: "credited, window 4"}) and m.written == 0


def test_every_validator_answering_at_once_ends_the_reads(monkeypatch):
    v = Verdict(3, "5" + "M" * 47, "unproven", "", 0.01, 0.4, 1.1)
    m, asked, waited = _miner([{A: v, B: v}], monkeypatch)
    asyncio.run(Miner._read_verdicts(m, 5))
    assert len(asked) == 1 and len(waited) == 1 and set(m.verdicts[1]) == {A, B}
