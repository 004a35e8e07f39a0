"""mser_lib: the library behind mser, the reproducible companion of FEMF and Atsuko.

Subpackages: :mod:`mser_lib.data` (one data path), :mod:`mser_lib.spectral` (DFT and graph-spectral
decompositions), :mod:`mser_lib.models`, :mod:`mser_lib.train`, :mod:`mser_lib.metrics`,
:mod:`mser_lib.experiments` (cached, resumable runs), :mod:`mser_lib.report` (tables and figures).
"""

__version__ = "0.1.0"
