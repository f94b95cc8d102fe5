"""Realistic acquisition physics for the CT and MRI plug-ins (no inverse crime, dose noise,
complex multi-coil MRI, coil-map estimation) and the named acquisition presets.

* :mod:`.ct` — :func:`~.ct.simulate_ct_sinogram`, :func:`~.ct.fine_geometry`, dose levels;
* :mod:`.mri` — random smooth phase, fine-grid k-space (Cartesian and radial), coil noise;
* :mod:`.coils` — loop-coil sensitivities, :func:`~.coils.estimate_coil_maps`,
  :func:`~.coils.sense_combine_adjoint`, :func:`~.coils.rss_adjoint`;
* :mod:`.presets` — :class:`~.presets.AcquisitionPreset` (``paper``, ``clinical``);
* :mod:`.figure` — the clinical-subject figure.

Submodules are imported explicitly (``from msl_recon.data.acquisition import ct``).
"""
