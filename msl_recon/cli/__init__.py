"""The ``msl-recon`` command line (typer). Each command lives in its own module."""
