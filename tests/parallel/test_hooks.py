"""The sharded miner's hooks into the single-process code paths."""

from __future__ import annotations

import pytest

from template.parallel.miner import CompressedMapping, SentCompressor, uploads_of
from template.protocol.aggregation import apply_uploads
from template.protocol.window_apply import WindowApplier
from template.training.compression import CompressedDelta


def test_the_outer_step_exposes_its_uploads():
    import functools
    import inspect

    step = functools.partial(apply_uploads, uploads=["u1", "u2"], hp=None)
    assert uploads_of(step) == ["u1", "u2"]
    with pytest.raises(TypeError):
        uploads_of(lambda m: 0)
    # the window-apply path builds its step that way (the sharded model depends on it)
    assert "functools.partial(apply_uploads, uploads=" in inspect.getsource(WindowApplier.apply)


def test_the_loop_gets_the_already_compressed_delta():
    comp = CompressedDelta({})
    delta = CompressedMapping(comp)
    assert SentCompressor(trainer=None).compress(delta) is comp
    assert dict(delta) == {} and SentCompressor(trainer=None).state_dict() == {}
