"""The validator neuron: gather uploads, check them, measure each one's real contribution,
score miners, set weights, and (as leader) publish the documents that keep the network in sync.

The pipeline, one stage a module, in the order ``loop.run_window`` calls them:

- ``watch``     first-seen times by this validator's own clock (polling while uploads are due)
- ``gather``    fetch and open a window's sealed uploads; the checks before any comparison
- ``verify``    per-upload checks without a model: format, signature, fields, page claims
- ``screen``    the model-free stages in order: ``verify``, ``replay``, ``copies`` (copies and
  mixes, on ``sketch`` summaries), free riders
- ``plan``      which uploads to measure (``sampling``: fair rotation; ``deadline``: the
  leader's time before its list is due) and which on more sequences
- ``measure``   per-sequence loss effects on the upload's own pages and on control pages
- ``judge``     statistical verdicts with a known false-positive rate (``outcomes``: why)
- ``score``     fold the verdicts into per-uid scores (``stale``: windows excused)
- ``step_check`` the leader measures its peer list's whole outer step; none if it harms
- ``leader``    peer lists and verdicts (every validator), aggregate, fingerprint, checkpoints
- ``weights``   scores -> weights the chain accepts, set on a schedule

Around it: ``args`` (flags, ``ValidatorConfig``), ``startup`` (build a ``Validator``, checks
that name the fix), ``sync`` (the shared window-apply path), ``cache`` (the windows held),
``secret`` (the sampling secret), ``state`` (persistence), ``status`` (the status file),
``evaluate`` (the held-out figure) and ``loop`` (``Validator``: one window, and the loop).
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
