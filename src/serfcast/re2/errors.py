"""The two ways an expression can be refused."""

from __future__ import annotations

from serfcast.errors import LocalProtocolError

__all__ = ["BadRegexpError", "UnsupportedRegexpError"]


class BadRegexpError(LocalProtocolError):
    """Go's regexp package would refuse to compile the expression.

    ``expr`` is the whole expression and ``position`` the offset (in characters)
    of the construct the message names.
    """

    def __init__(self, message: str, expr: str = "", position: int = 0) -> None:
        super().__init__(message)
        self.expr = expr
        self.position = position

    def __reduce__(self) -> tuple[type[BadRegexpError], tuple[str, str, int]]:
        # The default would rebuild the error from the message alone.
        return type(self), (str(self), self.expr, self.position)


class UnsupportedRegexpError(LocalProtocolError):
    """The expression is valid Go, but serfcast cannot match it with Python's ``re``."""
