"""Tissue classes of the digital head phantom and their CT and MR properties.

Each class has a label id (the value stored in :attr:`Subject.labels`), a CT number (mean and the
standard deviation of its texture, HU) and MR relaxation parameters at 1.5 T (T1 and T2 in ms,
proton density relative to CSF = 1).

Literature sources for the values (approximate, rounded; in vivo where available):

* Brain at 1.5 T — grey/white matter T1 and T2: Wansapura et al., J. Magn. Reson. Imaging 9:531
  (1999) (1.5 T vs 3 T comparison) and Stanisz et al., Magn. Reson. Med. 54:507 (2005); CSF T1
  ≈ 4 s, T2 ≈ 2 s: review by Bojorquez et al., Magn. Reson. Imaging 35:69 (2017).
  Proton densities (WM 0.70, GM 0.82, CSF 1.0): Whittall et al., Magn. Reson. Med. 37:34 (1997)
  and Neeb et al., NeuroImage 31:1156 (2006).
* Subcutaneous fat, skeletal muscle (used for the scalp) and fatty bone marrow (diploë) at
  1.5 T: de Bazelaire et al., Radiology 230:652 (2004).
* Cortical bone: T2* ≈ 0.4–0.5 ms and water content ≈ 15–20 % (Du & Bydder, NMR Biomed 26:489
  (2013)); it is void on conventional spin-echo images.
* Tumour and vasogenic edema: prolonged T1 and T2 from their raised water content (typical 1.5 T
  glioma/edema ranges reviewed by Just & Thelen, Radiology 169:779 (1988)).
* CT numbers: textbook ranges (e.g. Hsieh, "Computed Tomography", 2nd ed., 2009): air −1000,
  fat −120…−80, CSF 0…15, WM 20…30, GM 35…45, soft tissue/skin 30…60, cancellous bone 300…800,
  cortical bone 1000…2000 HU; vasogenic edema is hypodense to WM, tumours roughly iso/hyperdense
  to grey matter without contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AIR",
    "CANCELLOUS_BONE",
    "CORTICAL_BONE",
    "CSF",
    "EDEMA",
    "FAT",
    "GREY_MATTER",
    "LESION",
    "SCALP",
    "SINUS",
    "TISSUES",
    "VENTRICLES",
    "WHITE_MATTER",
    "Tissue",
    "property_lut",
    "tissue_by_name",
]


@dataclass(frozen=True)
class Tissue:
    """One tissue class of the phantom.

    Attributes
    ----------
    label : int
        Id stored in the label map (0 … 11).
    name : str
        Short machine name (``"grey_matter"``).
    hu : float
        Mean CT number, HU.
    hu_std : float
        Standard deviation of the CT texture, HU.
    t1_ms, t2_ms : float
        Longitudinal and transverse relaxation times at 1.5 T, ms.
    pd : float
        Proton density relative to CSF (0 … 1).
    """

    label: int
    name: str
    hu: float
    hu_std: float
    t1_ms: float
    t2_ms: float
    pd: float


AIR = 0
SCALP = 1
FAT = 2
CORTICAL_BONE = 3
CANCELLOUS_BONE = 4
SINUS = 5
CSF = 6
GREY_MATTER = 7
WHITE_MATTER = 8
VENTRICLES = 9
LESION = 10
EDEMA = 11

#: All tissue classes, indexed by label id.
TISSUES: tuple[Tissue, ...] = (
    # air has no signal; T1/T2 are placeholders that never matter because PD = 0
    Tissue(AIR, "air", hu=-1000.0, hu_std=5.0, t1_ms=1.0, t2_ms=1.0, pd=0.0),
    # scalp/skin: muscle-like relaxation (de Bazelaire 2004: muscle 1.5 T T1 1008, T2 44 ms)
    Tissue(SCALP, "scalp", hu=45.0, hu_std=12.0, t1_ms=1008.0, t2_ms=44.0, pd=0.75),
    # subcutaneous fat (de Bazelaire 2004, 1.5 T: T1 343, T2 58 ms)
    Tissue(FAT, "fat", hu=-100.0, hu_std=15.0, t1_ms=343.0, t2_ms=58.0, pd=0.90),
    # cortical bone: T2* ~0.5 ms and low free water, void on spin echo
    Tissue(
        CORTICAL_BONE, "cortical_bone", hu=1600.0, hu_std=150.0, t1_ms=250.0, t2_ms=0.5, pd=0.05
    ),
    # diploe, fatty marrow (de Bazelaire 2004, bone marrow 1.5 T: T1 549, T2 49 ms)
    Tissue(
        CANCELLOUS_BONE, "cancellous_bone", hu=600.0, hu_std=150.0, t1_ms=549.0, t2_ms=49.0, pd=0.55
    ),
    # paranasal sinuses / mastoid air cells: air with a little mucosa
    Tissue(SINUS, "sinus", hu=-950.0, hu_std=25.0, t1_ms=1.0, t2_ms=1.0, pd=0.0),
    # CSF (Bojorquez 2017): T1 ~4000, T2 ~2000 ms
    Tissue(CSF, "csf", hu=8.0, hu_std=5.0, t1_ms=4000.0, t2_ms=2000.0, pd=1.0),
    # grey matter at 1.5 T: T1 ~1100, T2 ~95 ms (Wansapura 1999, Stanisz 2005)
    Tissue(GREY_MATTER, "grey_matter", hu=38.0, hu_std=4.0, t1_ms=1100.0, t2_ms=95.0, pd=0.82),
    # white matter at 1.5 T: T1 ~680, T2 ~75 ms (Wansapura 1999, Stanisz 2005)
    Tissue(WHITE_MATTER, "white_matter", hu=28.0, hu_std=4.0, t1_ms=680.0, t2_ms=75.0, pd=0.70),
    # ventricular CSF: same fluid as CSF
    Tissue(VENTRICLES, "ventricles", hu=6.0, hu_std=4.0, t1_ms=4000.0, t2_ms=2000.0, pd=1.0),
    # solid tumour (e.g. glioma), T1 and T2 prolonged
    Tissue(LESION, "lesion", hu=45.0, hu_std=8.0, t1_ms=1350.0, t2_ms=110.0, pd=0.85),
    # vasogenic edema: hypodense in CT, dark in T1w, bright in T2w
    Tissue(EDEMA, "edema", hu=18.0, hu_std=5.0, t1_ms=1500.0, t2_ms=180.0, pd=0.90),
)

_BY_NAME = {t.name: t for t in TISSUES}


def tissue_by_name(name: str) -> Tissue:
    """Look up a tissue by its short name (see :data:`TISSUES`)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown tissue {name!r}; known: {', '.join(_BY_NAME)}") from None


def property_lut(field: str) -> np.ndarray:
    """A lookup table ``lut[label] -> property`` (float64, shape ``(12,)``).

    Parameters
    ----------
    field : str
        One of ``"hu"``, ``"hu_std"``, ``"t1_ms"``, ``"t2_ms"``, ``"pd"``.
    """
    if field not in {"hu", "hu_std", "t1_ms", "t2_ms", "pd"}:
        raise ValueError(f"property_lut: unknown field {field!r}")
    return np.array([getattr(t, field) for t in TISSUES], dtype=np.float64)


assert all(t.label == i for i, t in enumerate(TISSUES))
