"""A restricted unpickler for data files: numpy arrays and builtin containers, nothing else.

``pickle.load`` on a file someone sent you runs whatever callable the file names (``os.system``,
``subprocess.Popen``...). The data pickles of SPEC.md section 1 (MMSA ``*.pkl``, the MoMKE/GCNet
label pickle) only need numpy's array reconstruction and builtin containers, so :func:`safe_load`
admits exactly those globals and refuses every other one with an :class:`UnsafePickleError` naming
the file and the offending ``module.name``.

Admitted globals (py2 names such as ``__builtin__`` and ``copy_reg`` are mapped first):

* numpy: ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``,
  ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``,
  ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer`` (protocol-5 arrays),
  ``numpy.ndarray``, ``numpy.dtype``;
* builtins: ``dict list tuple set frozenset str bytes bytearray int float complex bool``;
* ``collections.OrderedDict``, ``collections.defaultdict``;
* ``_codecs.encode`` restricted to latin-1 (how protocol-2 pickles written by Python 3 store bytes).

Legacy ``numpy.core`` names are resolved to ``numpy._core`` on numpy >= 2, so loading old pickles
raises no deprecation warning.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import pickle
from pathlib import Path

import numpy as np

from mser_lib.data.validate import DataFormatError

__all__ = ["UnsafePickleError", "safe_load", "safe_loads", "ALLOWED_GLOBALS"]


class UnsafePickleError(DataFormatError):
    """A pickle names a global outside the allow-list (e.g. ``os.system``)."""

    def __init__(self, file: str | Path, global_name: str) -> None:
        self.global_name = global_name
        super().__init__(
            file, "pickle global",
            "only numpy array reconstruction and builtin containers "
            "(refused for safety: loading it would run arbitrary code)",
            f"a reference to the global {global_name}",
        )


def _np_core():
    """numpy's core package: ``numpy._core`` on numpy >= 2, ``numpy.core`` before."""
    try:
        import numpy._core as core
        import numpy._core.multiarray as ma  # noqa: F401
    except ImportError:  # numpy < 2
        import numpy.core as core  # type: ignore[no-redef]
        import numpy.core.multiarray  # noqa: F401
    return core


def _frombuffer():
    core = _np_core()
    import importlib

    numeric = importlib.import_module(core.__name__ + ".numeric")
    return numeric._frombuffer


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not admitted")
    return codecs.encode(obj, "latin1", errors)


def _build_allowed() -> dict[tuple[str, str], object]:
    ma = _np_core().multiarray
    frombuffer = _frombuffer()
    allowed: dict[tuple[str, str], object] = {}
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = ma._reconstruct
        allowed[(f"{prefix}.multiarray", "scalar")] = ma.scalar
        allowed[(f"{prefix}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for name in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                 "int", "float", "complex", "bool"):
        allowed[("builtins", name)] = getattr(builtins, name)
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("collections", "defaultdict")] = collections.defaultdict
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


ALLOWED_GLOBALS: dict[tuple[str, str], object] = _build_allowed()

# py2 module names (pickle's fix_imports does this inside the default find_class, which we replace).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_PY2_NAMES = {("__builtin__", "unicode"): ("builtins", "str"), ("__builtin__", "long"): ("builtins", "int"),
              ("__builtin__", "basestring"): ("builtins", "str")}


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` only returns allow-listed globals."""

    def __init__(self, file, *, source: str, encoding: str = "ASCII", errors: str = "strict") -> None:
        super().__init__(file, encoding=encoding, errors=errors)
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D401 (pickle API)
        key = _PY2_NAMES.get((module, name), (_PY2_MODULES.get(module, module), name))
        try:
            return ALLOWED_GLOBALS[key]
        except KeyError:
            shown = f"{module}.{name}"
            if module in ("posix", "nt"):  # how os.* functions are pickled
                shown += f" (os.{name})"
            raise UnsafePickleError(self._source, shown) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(self._source, f"persistent id {pid!r}")


def safe_load(path: str | Path, encoding: str = "ASCII", errors: str = "strict"):
    """Unpickle ``path`` admitting only numpy arrays and builtin containers.

    Args:
        path: the pickle file.
        encoding: how py2 ``str`` objects are decoded; use ``"latin1"`` for pickles written by
            Python 2 that hold numpy arrays (the MoMKE/GCNet label pickles).
        errors: decoding error handler (as :func:`pickle.load`).

    Raises:
        DataFormatError: the file is missing or is not a readable pickle.
        UnsafePickleError: the pickle references a global outside the allow-list; the message names
            the file and the global (e.g. ``os.system``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "<file>", "an existing pickle file", "no such file")
    with open(path, "rb") as fh:
        return _load(fh, str(path), encoding, errors)


def safe_loads(data: bytes, source: str = "<bytes>", encoding: str = "ASCII", errors: str = "strict"):
    """:func:`safe_load` for an in-memory pickle; ``source`` names it in error messages."""
    import io

    return _load(io.BytesIO(data), source, encoding, errors)


def _load(fh, source: str, encoding: str, errors: str):
    try:
        return _RestrictedUnpickler(fh, source=source, encoding=encoding, errors=errors).load()
    except DataFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as exc:
        raise DataFormatError(source, "<pickle>", "a readable pickle of numpy arrays and containers",
                              f"{type(exc).__name__}: {exc}") from exc
