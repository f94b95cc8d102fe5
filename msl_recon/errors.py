"""Exceptions that the command line reports as one line with exit code 2."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user: a missing file, an invalid option, an unreadable volume.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    """
