"""msl-recon: multi-sensor learning (MSL) for synergetic CT + MRI reconstruction.

Subpackages: :mod:`msl_recon.data` (phantoms, ingest, simulation, HDF5), :mod:`msl_recon.model`
(the MSL network), :mod:`msl_recon.training`, :mod:`msl_recon.inference`,
:mod:`msl_recon.metrics`, :mod:`msl_recon.baselines` and the ``msl-recon`` command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("msl-recon")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
