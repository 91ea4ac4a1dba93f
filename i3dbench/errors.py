"""The one error type a user can act on, and how the command line treats errors.

Every module raises :class:`UserError` (or a subclass: ``ZooError``, ``AnnotationError``,
``CheckpointError``, ``RecordError``, ...) for bad input: a malformed manifest, an unknown
entry, a bad flag value, a missing data root, an unreadable checkpoint, an HTTP error. Its
message names the file, line or field and says what to do. ``i3dbench`` prints it on one line
and exits 2. Anything else that escapes is an internal error: exit 3, with the traceback
written to a file (or shown with ``--debug``).

Exit codes of the command line (also in ``i3dbench --help`` and the README):

* 0 — ok
* 1 — a regression (``gate``; ``run``/``eval`` when a result is outside its tolerance is not a
  regression: only the gate judges)
* 2 — cannot judge, bad usage or bad input (one clear line naming what to fix)
* 3 — an internal error (a bug: the traceback file is named)
* 130 — interrupted (Ctrl-C); resumable work is kept
"""

from __future__ import annotations

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UserError(Exception):
    """Bad input or usage; the message names the file, line or field and what to do (exit 2)."""


class UsageError(UserError, ValueError):
    """A flag or argument value that cannot work (``--views 10x7``, ``--clip-len -3``)."""


class UnknownEntryError(UserError, KeyError):
    """No zoo entry of that name (the message suggests close names)."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message should read as one
        return str(self.args[0]) if self.args else ""
