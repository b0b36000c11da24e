"""One exception type for every input problem a user can fix.

Every message names the thing that is wrong (file, row, field) and, where possible, the fix.
The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FrontierError(ValueError):
    """A user-fixable problem: bad input file, unknown name, impossible configuration."""


class InputError(FrontierError):
    """A malformed input file. Carries where the problem is."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 field: str | None = None, fix: str | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        text = (": ".join([", ".join(where), message]) if where else message)
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)
        self.path, self.row, self.field, self.fix = path, row, field, fix


class CoverageError(FrontierError):
    """The profile tables (or fitted models) do not cover what was asked."""
