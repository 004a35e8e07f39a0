"""mser_lib: the library behind mser, the reproducible companion of FEMF and Atsuko.

Subpackages: :mod:`mser_lib.data` (one data path), :mod:`mser_lib.spectral` (DFT and graph-spectral
decompositions), :mod:`mser_lib.models`, :mod:`mser_lib.train`, :mod:`mser_lib.metrics`,
:mod:`mser_lib.experiments` (cached, resumable runs), :mod:`mser_lib.report` (tables and figures).
"""

import warnings

__version__ = "0.1.0"

# tqdm.auto warns about missing ipywidgets inside Jupyter kernels, with the path of the installed tqdm, on the
# first import of any module with a progress bar; the notebooks run without bars. Set here, before any
# submodule imports tqdm (it was set in pipeline.py, after the first import in notebooks 02, 03 and 06).
warnings.filterwarnings("ignore", message="IProgress not found")
