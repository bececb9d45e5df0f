"""The validator neuron: gather uploads, check them, measure each one's real contribution,
score miners, set weights, and (as leader) publish the documents that keep the network in sync.

- ``args``      validator flags and ``ValidatorConfig``
- ``startup``   build a ``Validator`` from flags, with start-up checks that name the fix
- ``gather``    fetch a window's uploads, with every check made before evaluation
- ``checks``    anti-cheat: copies, free-riders, replays, page claims
- ``evaluate``  loss before/after applying one upload, on assigned and held-out pages
- ``sampling``  fair rotation when not every upload fits the time budget
- ``scoring``   per-uid moving average with penalties
- ``weights``   normalised weights under the chain's limits, set on a schedule
- ``leader``    peer lists, aggregates, fingerprints and checkpoints
- ``state``     persistence of scores, window and model
- ``status``    the status file after every window
- ``loop``      ``Validator``: one window's work, and the forever loop
"""

from .args import ValidatorConfig, add_validator_args, config_from_args


def __getattr__(name: str):
    """``Validator`` and ``WindowReport`` load torch: import them only when asked for, so the
    flags (``template.validator.args``) are checked before any heavy import."""
    if name in ("Validator", "WindowReport"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(name)


__all__ = [
    "Validator",
    "ValidatorConfig",
    "WindowReport",
    "add_validator_args",
    "config_from_args",
]
