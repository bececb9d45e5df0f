"""The per-rank memory estimate behind docs/multi_gpu.md and min_compute.yml."""

from __future__ import annotations

from template.hparams import load_hparams
from template.parallel.memory import fitting, min_gpus, rank_memory, table
from template.training.requirements import param_count


def test_sharded_state_divides_by_the_rank_count():
    hp = load_hparams("1b")
    one, eight = rank_memory(hp, 1, 4, False), rank_memory(hp, 8, 4, False)
    assert abs(one.state_gb - 24 * param_count(hp) / 1e9) < 1e-9
    assert abs(eight.state_gb * 8 - one.state_gb) < 1e-9
    assert eight.total_gb < one.total_gb


def test_checkpointing_keeps_less_activation_memory():
    hp = load_hparams("8b")
    assert (
        rank_memory(hp, 8, 4, True).activations_gb < rank_memory(hp, 8, 4, False).activations_gb / 3
    )


def test_8b_needs_several_gpus_and_1b_fits_one():
    assert fitting(load_hparams("8b"), 1) is None
    assert min_gpus(load_hparams("8b")).gpus in (4, 8)
    assert min_gpus(load_hparams("1b")).gpus == 1
    assert "| 8b |" in table()
