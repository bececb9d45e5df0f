"""Window timing: which window a block is in, and each window's deadlines.

Window w covers blocks [start(w), start(w + 1)). Miners train H steps on window w's pages,
starting once window w - 1's aggregate is applied (or at its publish deadline without it),
then upload their delta sealed (training/seal.py) before the upload cut-off, a few blocks
after the window ends. From the block after the cut-off to the reveal deadline they publish
the keys that open the uploads. Evaluation and aggregation of window w happen during window
w + 1, and miners wait for that aggregate before training w + 1:

    start(w)                   start(w+1)                                    start(w+2)
    |                          |     upload cutoff(w)  reveal deadline(w)      |
    |                          |                  |    |   publish deadline(w) |
    |-- wait --|-- train w --| |-- uploads of w --|keys|  |                    |
                               |                       |-- leader publishes w -|
                               |                          |-- train w+1 --|    |
"""

from __future__ import annotations

from dataclasses import dataclass

from template.hparams import WindowConfig


@dataclass(frozen=True)
class WindowClock:
    cfg: WindowConfig

    @property
    def length(self) -> int:
        return self.cfg.blocks_per_window

    def window_of(self, block: int) -> int:
        return block // self.cfg.blocks_per_window

    def start(self, window: int) -> int:
        """First block of ``window``."""
        return window * self.cfg.blocks_per_window

    def end(self, window: int) -> int:
        """First block after ``window`` (= start of the next one)."""
        return self.start(window + 1)

    def upload_deadline(self, window: int) -> int:
        """Uploads of ``window`` must land before this block (grace not included)."""
        return self.end(window) + self.cfg.upload_blocks

    def upload_cutoff(self, window: int) -> int:
        """The hard cut-off: deadline plus grace. Later uploads are rejected as late."""
        return self.upload_deadline(window) + self.cfg.grace_blocks

    def reveal_start(self, window: int) -> int:
        """Seal keys of ``window`` go out from this block on: one after the cut-off, so every
        validator's last look at the uploads (at the cut-off block) precedes them."""
        return self.upload_cutoff(window) + 1

    def reveal_deadline(self, window: int) -> int:
        """Seal keys of ``window`` are due before this block."""
        return self.upload_cutoff(window) + self.cfg.reveal_blocks

    def publish_deadline(self, window: int) -> int:
        """The leader's peer list for ``window`` is due before this block."""
        return self.end(window) + self.cfg.publish_blocks

    def is_checkpoint_window(self, window: int) -> bool:
        return (window + 1) % self.cfg.checkpoint_every == 0


def upload_time_verdict(
    last_modified: float, window_open_ts: float, cutoff_ts: float, *, skew: float = 2.0
) -> str:
    """'ok', 'early' or 'late' for an object's LastModified against block timestamps.

    ``window_open_ts`` is the timestamp of the window's first block (nothing trained on the
    window's model can exist before it); ``cutoff_ts`` that of the upload cut-off block.
    ``skew`` seconds of clock difference between the bucket and the chain are tolerated.
    """
    if last_modified < window_open_ts - skew:
        return "early"
    if last_modified > cutoff_ts + skew:
        return "late"
    return "ok"
