"""Exceptions of msl-recon.

Library code (``msl_recon.data``, ``.training``, ``.inference`` …) raises ordinary exceptions:
:class:`InputError` (a :class:`ValueError`) for invalid data, files, settings or configs that the
caller supplied. Only the command line (:mod:`msl_recon.cli`) turns exceptions into user errors:
it prints one ``error: <message>`` line and exits with status 2 (see ``docs/architecture.md``,
"Errors").
"""

from __future__ import annotations

__all__ = ["InputError", "MSLReconError", "UserError"]


class MSLReconError(Exception):
    """Base class of the exceptions msl-recon raises on purpose."""


class InputError(MSLReconError, ValueError):
    """Invalid input from the caller: a missing or unreadable file, an invalid setting or config,
    data that fails validation. A ``ValueError``, so library users can catch it as one."""


class UserError(MSLReconError):
    """Raised by the command-line layer only: a bad option or argument.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    """
