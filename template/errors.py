"""The shape every typed error of the package shares: a message plus the fix (``hint``)."""

from __future__ import annotations


class HintedError(Exception):
    """An error whose text ends with what to do about it; subclasses set ``hint``."""

    hint: str = ""

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint if hint is not None else type(self).hint
        super().__init__(f"{message}. {self.hint}" if self.hint else message)
