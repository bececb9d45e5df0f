"""One back-off policy for every retried request (chain calls, S3 transfers).

Exponential back-off, bounded: ``attempts`` tries in all; the wait after failed try ``n``
(0-based) is ``min(max_delay, base_delay * 2**n)``, drawn uniformly from [0, that] when
``jitter`` is on (S3's advice for throttled clients). Which failures are retried is each
caller's own classification (``chain/subtensor_errors.py``, ``storage/retry.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # total tries, including the first
    base_delay: float = 0.5  # seconds before the first retry; doubles each time
    max_delay: float = 8.0
    jitter: bool = False  # full jitter: wait a uniform draw from [0, delay]

    def delay(self, failed: int) -> float:
        """Seconds to wait after failed try number ``failed`` (0-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2**failed)
        return random.uniform(0, ceiling) if self.jitter else ceiling
