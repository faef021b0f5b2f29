"""The project's user-facing error: bad input that the user can fix.

The CLI prints a `UserError`'s message alone (no traceback) and exits 1; every other
exception keeps its traceback, because it is a bug. Raise it for wrong flags, config
values out of range, missing or corrupt input files and output paths that cannot be
written. It subclasses ValueError so library callers that already catch ValueError keep
working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Input the user must fix; the message says what is wrong and what to do."""
