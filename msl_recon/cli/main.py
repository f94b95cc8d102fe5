"""Entry point of the ``msl-recon`` command.

Each command module defines ``register(app)``; heavy imports happen inside the commands so that
``msl-recon --help`` stays fast. Every bad input — a bad option, a :class:`UserError`, an
:class:`InputError` from the library, a filesystem error — prints one ``error: ...`` line and
exits with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from .. import __version__
from ..errors import InputError, UserError

app = typer.Typer(
    name="msl-recon",
    help=(
        "Multi-sensor learning for synergetic CT + MRI reconstruction.\n\n"
        "Typical run: `msl-recon simulate` (phantom → sinograms + k-space in HDF5), "
        "`msl-recon train`, `msl-recon reconstruct`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# command modules, in the order they appear in --help
_COMMAND_MODULES: list[str] = ["simulate", "train", "reconstruct", "demo"]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"msl-recon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Multi-sensor learning for synergetic CT + MRI reconstruction."""


@app.command("presets")
def presets_cmd() -> None:
    """List the scanner-matched CT geometry presets."""
    import geometries

    for name, summary in geometries.presets().items():
        typer.echo(f"{name:24s} {summary}")


for _mod in _COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_mod}").register(app)


def _click_exception_types() -> tuple[type[BaseException], ...]:
    try:
        import click
    except ModuleNotFoundError:  # typer >= 0.16 vendors click as typer._click
        from typer import _click as click
    return (click.exceptions.ClickException,)


def _os_error_message(exc: OSError) -> str:
    """One line for a filesystem error: ``<path>: <reason>`` (no errno, no traceback)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, NotADirectoryError):
        reason += " (a parent of the path is a file)"
    if exc.filename is not None and exc.filename2 is not None:
        return f"{exc.filename} -> {exc.filename2}: {reason}"
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the CLI: ``warning: <message>``, without the source line."""
    print(f"warning: {message}", file=file if file is not None else sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status.

    0 on success; 2 with one ``error: ...`` line on stderr for bad options (the framework's
    usage errors), invalid input (:class:`UserError`, :class:`InputError`) and filesystem errors
    (:class:`OSError`); 130 with one line after Ctrl-C. Any other exception is a bug and keeps
    its traceback. Warnings print as ``warning: <message>`` lines.
    """
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            rv = app(args=argv, standalone_mode=False)
        except (UserError, InputError) as exc:
            typer.echo(f"error: {exc}", err=True)
            return 2
        except typer.Exit as exc:
            return int(exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("interrupted", err=True)
            return 130
        except _click_exception_types() as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `msl-recon`: the help text
                exc.show()
                return int(exc.exit_code)
            msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            typer.echo(f"error: {' '.join(msg.split())}", err=True)
            return 2
        except OSError as exc:
            typer.echo(f"error: {_os_error_message(exc)}", err=True)
            return 2
    # In non-standalone mode the framework turns Ctrl-C into Exit(130) and *returns* the code.
    if isinstance(rv, int) and not isinstance(rv, bool):
        if rv == 130:
            typer.echo("interrupted", err=True)
        return rv
    return 0


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
