"""The one exception type for a user's mistake (a bad input file, flag value or config key).

`motab` prints such an error as one line naming the file, line and field, without a traceback
(motab.cli); anything else is a bug and keeps its traceback. The located errors of the pipeline
(jsonio.DataError, the plan's and the configs' errors) subclass it; it stays a ValueError so a
caller that catches ValueError keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user gave; its message says where (file:line:field) and what was expected."""
