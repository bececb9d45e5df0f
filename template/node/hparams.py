"""The run hyperparameters a neuron accepts: any valid file, as long as the network can run it."""

from __future__ import annotations

from template.hparams import HParams, HParamsError, load_hparams

from .errors import StartupError

BYTE_VOCAB = 257  # template.training.tokenizer.ByteTokenizer: 256 bytes + end-of-text


def load_run_hparams(name_or_path: str) -> HParams:
    """``--hparams`` for a live node; StartupError names the problem.

    Dense DiLoCo is a simulation baseline only (scripts/bench_convergence.py): uploads on the
    network are SparseLoCo, so a file asking for another outer method is refused here rather
    than silently run as SparseLoCo."""
    try:
        hp = load_hparams(name_or_path)
    except HParamsError as e:
        raise StartupError(f"--hparams: {e}") from None
    if hp.outer.method != "sparseloco":
        raise StartupError(
            f"--hparams: outer.method is {hp.outer.method!r}; the network runs 'sparseloco' "
            "(dense DiLoCo is a baseline of scripts/bench_convergence.py only)"
        )
    if hp.data.tokenizer == "byte" and hp.model.vocab_size != BYTE_VOCAB:
        raise StartupError(
            f"--hparams: model.vocab_size is {hp.model.vocab_size} but data.tokenizer is 'byte' "
            f"({BYTE_VOCAB} ids); use the subnet owner's hparams file, which pins the run's "
            "tokenizer under [data] (docs/owner.md)"
        )
    return hp
