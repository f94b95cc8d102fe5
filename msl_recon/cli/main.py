"""Entry point of the ``msl-recon`` command.

Each command module defines ``register(app)``; heavy imports happen inside the commands so that
``msl-recon --help`` stays fast. User errors (:class:`msl_recon.errors.UserError`) print one line
and exit with status 2.
"""

from __future__ import annotations

import importlib
import sys

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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for user errors)."""
    try:
        app(args=argv, standalone_mode=False)
    except (UserError, InputError) as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # click usage errors
        try:
            import click
        except ModuleNotFoundError:  # typer >= 0.16 vendors click as typer._click
            from typer import _click as click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
