"""A restricted unpickler for data files: numpy arrays and builtin containers, nothing else.

``pickle.load`` on a file someone sent you runs whatever callable the file names (``os.system``,
``subprocess.Popen``...). The data pickles of docs/data-formats.md (MMSA ``*.pkl``, the MoMKE/GCNet
label pickle) only need numpy's array reconstruction and builtin containers, so :func:`safe_load`
admits exactly those globals and refuses every other one with an :class:`UnsafePickleError` naming
the file and the offending ``module.name``.

Admitted globals (py2 names such as ``__builtin__`` and ``copy_reg`` are mapped first):

* numpy: ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``,
  ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``,
  ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer`` (protocol-5 arrays),
  ``numpy.ndarray`` (only as the array type handed to ``_reconstruct``, never called), ``numpy.dtype``;
* builtins: ``dict list tuple set frozenset str bytes bytearray int float complex bool``;
* ``collections.OrderedDict``, ``collections.defaultdict``;
* ``_codecs.encode`` restricted to latin-1 (how protocol-2 pickles written by Python 3 store bytes).

Admitting a global is not enough to be safe: numpy trusts the state a pickle hands to
``ndarray.__setstate__`` and ``dtype.__setstate__`` (the BUILD opcode). A forged dtype state (an
object field, or an object dtype whose flags were cleared) makes numpy read attacker bytes as
``PyObject*`` pointers, and ``numpy.ndarray(shape, dtype, buffer, offset, strides)`` makes a
zero-stride array of any size. So the unpickler runs the pure-Python opcode loop with these rules:

* every call (REDUCE, INST, OBJ) goes through a checker of its callable and arguments; NEWOBJ is
  refused, ``numpy.ndarray`` is never called, ``bytes(n)``/``bytearray(n)`` with an integer are refused;
* BUILD is admitted only once, on an array made by ``_reconstruct`` or a dtype made by
  ``numpy.dtype`` in this pickle (never on an admitted global or anything else), and only with a
  plain dtype: booleans, integers, floats, complex, fixed bytes/str (``b i u f c S U``) or the plain
  object dtype ``O`` with exactly its canonical state (numpy then fills it from a list of Python
  objects, never from raw bytes). Structured (``V``) dtypes, subarray, datetime dtypes and any
  state whose flags, fields or sizes differ from numpy's own for that type are refused;
* ``numpy.dtype`` always returns a fresh copy (``copy=False`` would hand back numpy's shared builtin
  dtype, which a BUILD would then mutate for the whole process);
* APPEND/SETITEM/ADDITEMS only on plain lists, dicts and sets;
* allocations are capped relative to the file size: a length field is checked against the bytes
  left in the file before anything is allocated, and the number of elements the pickle builds, the
  cost of hashing its keys and the logical size of the result (shared references counted each time
  they occur, the "billion laughs" measure) are all capped at :data:`MAX_EXPANSION` times the file
  size plus :data:`MIN_BUDGET`; the result may not nest deeper than :data:`MAX_DEPTH` or contain a
  cycle.

Every failure, including ``MemoryError``, ``OverflowError`` and ``RecursionError``, is raised as a
:class:`~mser_lib.data.validate.DataFormatError` naming the file.

Legacy ``numpy.core`` names are resolved to ``numpy._core`` on numpy >= 2, so loading old pickles
raises no deprecation warning.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import io
import math
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from mser_lib.data.validate import DataFormatError

__all__ = ["UnsafePickleError", "safe_load", "safe_loads", "ALLOWED_GLOBALS", "MAX_EXPANSION", "MIN_BUDGET",
           "MAX_DEPTH"]

#: Elements built (and logical size of the result) allowed per byte of pickle, on top of MIN_BUDGET.
MAX_EXPANSION = 4
#: Elements any pickle may build, however small the file.
MIN_BUDGET = 1_000_000
#: Deepest nesting of containers admitted in a result.
MAX_DEPTH = 100

_PLAIN_KINDS = frozenset("biufcSU")
_MAX_NDIM = 64


class UnsafePickleError(DataFormatError):
    """A pickle names a global outside the allow-list (e.g. ``os.system``) or uses one unsafely."""

    def __init__(self, file: str | Path, global_name: str) -> None:
        self.global_name = global_name
        super().__init__(
            file, "pickle global",
            "only numpy array reconstruction and builtin containers "
            "(refused for safety: loading it would run arbitrary code)",
            f"a reference to the global {global_name}",
        )


class _Refused(Exception):
    """A construct the unpickler refuses; turned into a DataFormatError naming the file."""

    def __init__(self, field: str, expected: str, found: str) -> None:
        super().__init__(found)
        self.field, self.expected, self.found = field, expected, found


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

_GLOBAL_NAMES = {id(v): f"{m}.{n}" for (m, n), v in ALLOWED_GLOBALS.items()}


# ----------------------------------------------------------------------------------------- dtypes
def _check_plain_dtype(dt, *, allow_object: bool, where: str) -> np.dtype:
    """``dt`` is a dtype numpy would build itself from its type string, of a plain kind."""
    if not isinstance(dt, np.dtype):
        raise _Refused(where, "a numpy dtype", type(dt).__name__)
    if dt.names is not None or dt.fields is not None or dt.subdtype is not None:
        raise _Refused(where, "a plain (non-structured) dtype", "a structured or subarray dtype")
    if dt.kind not in _PLAIN_KINDS and not (allow_object and dt.kind == "O"):
        raise _Refused(where, "a dtype of kind b, i, u, f, c, S or U" + (" (or O)" if allow_object else ""),
                       f"kind {dt.kind!r}")
    ref = np.dtype(dt.str)
    if (dt != ref or dt.flags != ref.flags or dt.itemsize != ref.itemsize or dt.alignment != ref.alignment
            or dt.hasobject != ref.hasobject or dt.metadata is not None):
        raise _Refused(where, "a dtype with numpy's own state for its type", f"a forged {dt.str} dtype")
    return dt


def _check_dtype_state(dt: np.dtype, state, limit: int) -> None:
    """The state a BUILD would hand to ``dtype.__setstate__``: numpy's own for this plain type."""
    where = "dtype state"
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise _Refused(where, "a dtype state tuple of 8 or 9 items", _describe(state))
    if len(state) == 9 and state[8] is not None:
        raise _Refused(where, "no dtype metadata", "metadata")
    version, order, subdescr, names, fields, elsize, alignment, flags = state[:8]
    if version not in (3, 4):
        raise _Refused(where, "dtype state version 3 or 4", repr(version)[:40])
    if subdescr is not None or names is not None or fields is not None:
        raise _Refused(where, "a plain dtype (no fields, names or subarray)", "a structured dtype state")
    if order not in ("<", ">", "|", "="):
        raise _Refused(where, "a byte order of <, >, | or =", repr(order)[:40])
    if flags != dt.flags:
        raise _Refused(where, f"the flags numpy uses for {dt.str} ({dt.flags})", f"flags {flags!r:.40}")
    for name, value in (("elsize", elsize), ("alignment", alignment)):
        if type(value) is not int or not -1 <= value <= min(limit, 2**31):
            raise _Refused(where, f"{name} an integer in [-1, {min(limit, 2**31)}]", repr(value)[:40])
    if dt.kind not in "SU" and elsize not in (-1, dt.itemsize):
        raise _Refused(where, f"elsize -1 or {dt.itemsize} for {dt.str}", repr(elsize))


# ------------------------------------------------------------------------------------ the reader
class _BoundedFile:
    """A read-only view of the pickle that refuses any read longer than what is left of the file."""

    def __init__(self, fh, size: int) -> None:
        self._fh, self.size, self.pos = fh, size, 0

    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.remaining()
        if n > self.remaining():
            raise _Refused("<pickle>", f"a length that fits in the file ({self.remaining()} bytes left)",
                           f"a length field of {n} bytes (truncated file or pickle bomb)")
        data = self._fh.read(n)
        self.pos += len(data)
        return data

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        line = self._fh.readline()
        self.pos += len(line)
        return line


def _describe(obj) -> str:
    return type(obj).__name__


def _prod(shape) -> int:
    return math.prod(shape) if shape else 1


def _check_shape(shape, where: str) -> tuple:
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM or any(
            type(s) is not int or s < 0 for s in shape):
        raise _Refused(where, f"a tuple of at most {_MAX_NDIM} non-negative integers", repr(shape)[:80])
    return shape


_D = pickle._Unpickler.dispatch  # the pure-Python opcode table (we override some opcodes)


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python Unpickler with allow-listed globals, checked calls and BUILDs, and budgets."""

    dispatch = dict(_D)

    def __init__(self, file: _BoundedFile, *, source: str, encoding: str = "ASCII",
                 errors: str = "strict") -> None:
        super().__init__(file, encoding=encoding, errors=errors)
        self._source = source
        self._file = file
        self.limit = MAX_EXPANSION * file.size + MIN_BUDGET
        self._spent = 0
        self._weights: dict[int, tuple[object, int]] = {}      # id -> (tuple/frozenset, logical size)
        self._unbuilt: dict[int, object] = {}                   # arrays/dtypes made here, not yet BUILT
        ma = _np_core().multiarray
        self._calls = {
            id(ma._reconstruct): self._call_reconstruct, id(ma.scalar): self._call_scalar,
            id(_frombuffer()): self._call_frombuffer, id(np.dtype): self._call_dtype,
            id(_latin1_encode): self._call_latin1,
            id(collections.OrderedDict): self._call_container, id(collections.defaultdict): self._call_defaultdict,
        }
        for t in (dict, list, tuple, set, frozenset):
            self._calls[id(t)] = self._call_container
        for t in (str, bytes, bytearray):
            self._calls[id(t)] = self._call_text
        for t in (int, float, complex, bool):
            self._calls[id(t)] = self._call_number

    # ---- globals
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
        raise UnsafePickleError(self._source, f"persistent id {pid!r:.80}")

    # ---- budget
    def _charge(self, n: int, what: str) -> None:
        self._spent += n
        if self._spent > self.limit:
            raise _Refused("<pickle>", f"at most {self.limit} elements built for a file of {self._file.size} "
                           "bytes", f"more while building {what} (pickle bomb)")

    def _weight(self, obj) -> int:
        hit = self._weights.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if isinstance(obj, (str, bytes, bytearray)):
            return 1 + len(obj) // 8
        return 1

    def _register(self, obj, items) -> None:
        """Remember the logical size of an immutable container (hashing it walks all of it)."""
        self._weights[id(obj)] = (obj, 1 + sum(self._weight(x) for x in items))

    def _charge_hash(self, keys, what: str) -> None:
        self._charge(sum(self._weight(k) for k in keys), what)

    # ---- calls (REDUCE, INST, OBJ)
    def _call(self, func, args):
        if not isinstance(args, tuple):
            raise _Refused("<pickle>", "call arguments as a tuple", _describe(args))
        check = self._calls.get(id(func))
        if check is None:
            name = _GLOBAL_NAMES.get(id(func), type(func).__name__)
            raise _Refused("pickle call", "a call to an admitted constructor",
                           f"a call to {name}" + (" (only admitted as the array type of _reconstruct)"
                                                  if func is np.ndarray else ""))
        return check(func, args)

    def load_reduce(self):
        stack = self.stack
        args = stack.pop()
        stack[-1] = self._call(stack[-1], args)
    dispatch[pickle.REDUCE[0]] = load_reduce

    def _instantiate(self, klass, args):
        self.append(self._call(klass, tuple(args)))

    def load_newobj(self):
        raise _Refused("<pickle>", "no NEWOBJ opcodes (data pickles do not need them)", "NEWOBJ")
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj

    def _call_reconstruct(self, func, args):
        if len(args) != 3 or args[0] is not np.ndarray:
            raise _Refused("_reconstruct", "(numpy.ndarray, (0,), typecode)", repr(args)[:80])
        _, shape, code = args
        if _prod(_check_shape(shape, "_reconstruct shape")) != 0 or not isinstance(code, (bytes, str)) \
                or len(code) > 8:
            raise _Refused("_reconstruct", "(numpy.ndarray, (0,), typecode)", repr(args)[:80])
        arr = func(np.ndarray, shape, code)
        self._unbuilt[id(arr)] = arr
        return arr

    def _call_dtype(self, func, args):
        if not 1 <= len(args) <= 3 or not isinstance(args[0], (str, bytes)) or len(args[0]) > 16 \
                or any(type(a) not in (bool, int) for a in args[1:]):
            raise _Refused("numpy.dtype", "numpy.dtype(typestring, align, copy)", repr(args)[:80])
        code = args[0].decode("ascii") if isinstance(args[0], bytes) else args[0]
        dt = np.dtype(code, bool(args[1]) if len(args) > 1 else False, True)   # always a fresh copy
        _check_plain_dtype(dt, allow_object=True, where="numpy.dtype")
        self._unbuilt[id(dt)] = dt
        return dt

    def _use_dtype(self, dt, where: str, allow_object: bool) -> np.dtype:
        _check_plain_dtype(dt, allow_object=allow_object, where=where)
        self._unbuilt.pop(id(dt), None)      # a dtype in use may not be rebuilt afterwards
        return dt

    def _call_scalar(self, func, args):
        if len(args) not in (1, 2):
            raise _Refused("numpy scalar", "(dtype, bytes)", repr(args)[:80])
        dt = self._use_dtype(args[0], "numpy scalar dtype", allow_object=True)
        if dt.kind == "O":
            return func(*args)
        if len(args) != 2 or not isinstance(args[1], (bytes, str)) or len(args[1]) != dt.itemsize:
            raise _Refused("numpy scalar", f"{dt.itemsize} bytes for a {dt.str} scalar", repr(args[1:])[:80])
        return func(dt, args[1])

    def _call_frombuffer(self, func, args):
        if len(args) not in (4, 5):
            raise _Refused("_frombuffer", "(buffer, dtype, shape, order)", repr(args)[:80])
        buf, dt, shape, order = args[:4]
        dt = self._use_dtype(dt, "_frombuffer dtype", allow_object=False)
        _check_shape(shape, "_frombuffer shape")
        if isinstance(buf, pickle.PickleBuffer):
            buf = buf.raw()
        if not isinstance(buf, (bytes, bytearray, memoryview)):
            raise _Refused("_frombuffer", "a bytes buffer", _describe(buf))
        nbytes = memoryview(buf).nbytes
        if _prod(shape) * dt.itemsize != nbytes:
            raise _Refused("_frombuffer", f"{_prod(shape)} x {dt.itemsize} bytes for shape {shape}",
                           f"{nbytes} bytes")
        if order not in ("C", "F", "A", "K"):
            raise _Refused("_frombuffer", "order C, F, A or K", repr(order)[:20])
        if len(args) == 5 and args[4] is not None and (
                not isinstance(args[4], tuple) or sorted(args[4]) != list(range(len(shape)))):
            raise _Refused("_frombuffer", "an axis order permuting the axes", repr(args[4])[:80])
        self._charge(_prod(shape), "an array")
        return func(*args)

    def _call_latin1(self, func, args):
        if not 1 <= len(args) <= 3 or not all(isinstance(a, str) for a in args):
            raise _Refused("_codecs.encode", "(str, encoding, errors)", repr(args)[:80])
        self._charge(len(args[0]) // 8 + 1, "bytes")
        return func(*args)

    def _call_text(self, func, args):
        if len(args) > 3 or (args and not isinstance(args[0], (str, bytes, bytearray, list, tuple))) \
                or not all(isinstance(a, str) for a in args[1:]):
            raise _Refused(func.__name__, f"{func.__name__}(str, bytes or a list of byte values[, encoding])",
                           f"{func.__name__}({', '.join(_describe(a) for a in args)})")
        if args:
            if isinstance(args[0], (list, tuple)) and func is str:
                raise _Refused("str", "str(text)", "str(list)")
            self._charge(len(args[0]) + 1 if isinstance(args[0], (list, tuple)) else len(args[0]) // 8 + 1,
                         func.__name__)
        return func(*args)

    def _call_number(self, func, args):
        if len(args) > 2 or not all(type(a) in (int, float, complex, bool, str, bytes) for a in args) \
                or any(isinstance(a, (str, bytes)) and len(a) > 4300 for a in args):
            raise _Refused(func.__name__, f"{func.__name__}(a number or a short string)",
                           f"{func.__name__}({', '.join(_describe(a) for a in args)})")
        return func(*args)

    def _call_container(self, func, args):
        if len(args) > 1 or (args and type(args[0]) not in (list, tuple, dict, set, frozenset,
                                                             collections.OrderedDict)):
            raise _Refused(func.__name__, f"{func.__name__}() or {func.__name__}(a container)",
                           f"{func.__name__}({', '.join(_describe(a) for a in args)})")
        items = args[0] if args else ()
        self._charge(len(items) + 1, func.__name__)
        if func in (set, frozenset):
            self._charge_hash(items, func.__name__)
        elif func in (dict, collections.OrderedDict):
            if isinstance(items, dict):
                self._charge_hash(items.keys(), func.__name__)
            else:
                for pair in items:
                    if type(pair) is not tuple or len(pair) != 2:
                        raise _Refused(func.__name__, "(key, value) pairs", _describe(pair))
                self._charge_hash([p[0] for p in items], func.__name__)
        out = func(items)
        if func in (tuple, frozenset):
            self._register(out, out)
        return out

    def _call_defaultdict(self, func, args):
        if not args or args[0] not in (None, list, dict, set, int, float, str, tuple):
            raise _Refused("defaultdict", "defaultdict(list, dict, set, int, float, str, tuple or None)",
                           repr(args[:1])[:80])
        if len(args) > 2 or (len(args) == 2 and type(args[1]) is not dict):
            raise _Refused("defaultdict", "defaultdict(factory[, dict])", repr(args)[:80])
        if len(args) == 2:
            self._charge(len(args[1]), "defaultdict")
            self._charge_hash(args[1].keys(), "defaultdict")
        return func(*args)

    # ---- BUILD
    def load_build(self):
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if self._unbuilt.get(id(inst)) is not inst:
            raise _Refused("pickle BUILD", "BUILD only once, on an array or dtype made by this pickle",
                           f"BUILD on {_GLOBAL_NAMES.get(id(inst), 'a ' + type(inst).__name__)}")
        del self._unbuilt[id(inst)]
        if isinstance(inst, np.dtype):
            _check_dtype_state(inst, state, self.limit)
            inst.__setstate__(state)
            _check_plain_dtype(inst, allow_object=True, where="dtype state")
            return
        self._build_array(inst, state)
    dispatch[pickle.BUILD[0]] = load_build

    def _build_array(self, arr: np.ndarray, state) -> None:
        where = "array state"
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused(where, "(version, shape, dtype, is_fortran, data)", _describe(state))
        shape, dt, fortran, data = state[-4:]
        _check_shape(shape, "array shape")
        dt = self._use_dtype(dt, "array dtype", allow_object=True)
        if type(fortran) not in (bool, int):
            raise _Refused(where, "is_fortran a bool", _describe(fortran))
        n = _prod(shape)
        if dt.kind == "O":
            if type(data) is not list or len(data) != n:
                raise _Refused(where, f"a list of {n} objects for an object array of shape {shape}",
                               f"{_describe(data)} of length {len(data) if hasattr(data, '__len__') else '?'}")
        else:
            if not isinstance(data, (bytes, bytearray, str)) or len(data) != n * dt.itemsize:
                raise _Refused(where, f"{n * dt.itemsize} bytes for shape {shape} of {dt.str}",
                               f"{_describe(data)} of length {len(data) if hasattr(data, '__len__') else '?'}")
        self._charge(n + 1, "an array")
        arr.__setstate__(state)
        # (numpy may swap a py2 string buffer to native byte order: compare kind and size only)
        if arr.shape != shape or arr.dtype.kind != dt.kind or arr.dtype.itemsize != dt.itemsize:
            raise _Refused(where, f"an array of shape {shape} and dtype {dt.str}", f"{arr.shape} {arr.dtype.str}")
        _check_plain_dtype(arr.dtype, allow_object=True, where="array dtype")

    # ---- containers filled by opcodes
    def _target(self, kinds, what: str):
        obj = self.stack[-1]
        if type(obj) not in kinds:
            raise _Refused("pickle " + what, f"{what} on a {' or '.join(k.__name__ for k in kinds)}",
                           f"{what} on a {type(obj).__name__}")
        return obj

    def load_append(self):
        value = self.stack.pop()
        self._target((list,), "APPEND").append(value)
        self._charge(1, "a list")
    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self):
        items = self.pop_mark()
        self._charge(len(items), "a list")
        self._target((list,), "APPENDS").extend(items)
    dispatch[pickle.APPENDS[0]] = load_appends

    _DICTS = (dict, collections.OrderedDict, collections.defaultdict)

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._charge(1, "a dict")
        self._charge_hash((key,), "a dict key")
        self._target(self._DICTS, "SETITEM")[key] = value
    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        items = self.pop_mark()
        target = self._target(self._DICTS, "SETITEMS")
        if len(items) % 2:
            raise _Refused("pickle SETITEMS", "key, value pairs", f"{len(items)} items")
        self._charge(len(items) // 2, "a dict")
        self._charge_hash(items[0::2], "dict keys")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]
    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self):
        items = self.pop_mark()
        target = self._target((set,), "ADDITEMS")
        self._charge(len(items), "a set")
        self._charge_hash(items, "set items")
        target.update(items)
    dispatch[pickle.ADDITEMS[0]] = load_additems

    def _tuple_of(self, items) -> tuple:
        self._charge(len(items) + 1, "a tuple")
        t = tuple(items)
        self._register(t, t)
        return t

    def load_tuple(self):
        items = self.pop_mark()          # pop first: pop_mark rebinds self.append
        self.append(self._tuple_of(items))
    dispatch[pickle.TUPLE[0]] = load_tuple

    def load_tuple1(self):
        self.stack[-1] = self._tuple_of(self.stack[-1:])
    dispatch[pickle.TUPLE1[0]] = load_tuple1

    def load_tuple2(self):
        self.stack[-2:] = [self._tuple_of(self.stack[-2:])]
    dispatch[pickle.TUPLE2[0]] = load_tuple2

    def load_tuple3(self):
        self.stack[-3:] = [self._tuple_of(self.stack[-3:])]
    dispatch[pickle.TUPLE3[0]] = load_tuple3

    def load_frozenset(self):
        items = self.pop_mark()
        self._charge(len(items) + 1, "a frozenset")
        self._charge_hash(items, "frozenset items")
        out = frozenset(items)
        self._register(out, out)
        self.append(out)
    dispatch[pickle.FROZENSET[0]] = load_frozenset

    def load_list(self):
        items = self.pop_mark()
        self._charge(len(items) + 1, "a list")
        self.append(items)
    dispatch[pickle.LIST[0]] = load_list

    def load_dict(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise _Refused("pickle DICT", "key, value pairs", f"{len(items)} items")
        self._charge(len(items) // 2 + 1, "a dict")
        self._charge_hash(items[0::2], "dict keys")
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})
    dispatch[pickle.DICT[0]] = load_dict

    def load_bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._file.size:
            raise _Refused("<pickle>", f"a bytearray no longer than the file ({self._file.size} bytes)",
                           f"a BYTEARRAY8 of {n} bytes (pickle bomb)")
        self.append(bytearray(self.read(n)))
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


# --------------------------------------------------------------------------- checking the result
_SCALARS = (type(None), bool, int, float, complex, np.generic, np.dtype)
_SEQUENCES = (list, tuple, set, frozenset)
_MAPPINGS = (dict, collections.OrderedDict, collections.defaultdict)


def _check_result(root, limit: int) -> None:
    """Refuse cycles, nesting deeper than MAX_DEPTH, foreign objects, and a logical size (shared
    references counted every time they occur) above ``limit``; linear in the number of edges."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def children(x):
        t = type(x)
        if t in _SEQUENCES:
            return list(x)
        if t in _MAPPINGS:
            return [v for kv in x.items() for v in kv]
        if t is np.ndarray:
            _check_plain_dtype(x.dtype, allow_object=True, where="array dtype")
            return list(x.ravel()) if x.dtype.kind == "O" else None
        return None

    def leaf(x) -> int:
        if isinstance(x, (str, bytes, bytearray)):
            return 1 + len(x) // 8
        if type(x) is np.ndarray:
            if x.dtype.kind == "U" and x.size and x.dtype.itemsize:
                codes = np.ascontiguousarray(x).view(np.dtype("u4").newbyteorder(x.dtype.byteorder))
                if codes.max() > 0x10FFFF:
                    raise _Refused("<pickle>", "str arrays of valid unicode code points",
                                   f"code point {int(codes.max()):#x}")
            return 1 + x.size
        if isinstance(x, int):
            return 1 + x.bit_length() // 64
        if isinstance(x, _SCALARS):
            return 1
        raise _Refused("<pickle>", "numpy arrays, numbers, strings and builtin containers",
                       f"an object of type {type(x).__name__}")

    def size_of(x) -> int | None:
        """Known size of ``x``, or None when it must be walked."""
        if id(x) in sizes:
            return sizes[id(x)]
        if id(x) in on_path:
            raise _Refused("<pickle>", "a tree of data (no cycles)", "a container that contains itself")
        return None

    kids = children(root)
    if kids is None:
        leaf(root)
        return
    frames = [[root, kids, 0, 1 + (root.size if type(root) is np.ndarray else 0)]]
    on_path.add(id(root))
    while frames:
        frame = frames[-1]
        node, kids, i, acc = frame
        if i < len(kids):
            frame[2] = i + 1
            child = kids[i]
            known = size_of(child)
            if known is None:
                sub = children(child)
                if sub is None:
                    known = leaf(child)
                elif len(frames) >= MAX_DEPTH:
                    raise _Refused("<pickle>", f"containers nested at most {MAX_DEPTH} deep",
                                   "deeper nesting")
                else:
                    frames.append([child, sub, 0, 1 + (child.size if type(child) is np.ndarray else 0)])
                    on_path.add(id(child))
                    continue
            frame[3] = acc + known
            if frame[3] > limit:
                raise _Refused("<pickle>", f"a result of logical size at most {limit}",
                               "more (shared references multiply it: billion laughs)")
            continue
        frames.pop()
        on_path.discard(id(node))
        sizes[id(node)] = acc
        if frames:
            frames[-1][3] += acc
            if frames[-1][3] > limit:
                raise _Refused("<pickle>", f"a result of logical size at most {limit}",
                               "more (shared references multiply it: billion laughs)")


# ---------------------------------------------------------------------------------------- public
def safe_load(path: str | Path, encoding: str = "ASCII", errors: str = "strict"):
    """Unpickle ``path`` admitting only numpy arrays and builtin containers.

    Args:
        path: the pickle file.
        encoding: how py2 ``str`` objects are decoded; use ``"latin1"`` for pickles written by
            Python 2 that hold numpy arrays (the MoMKE/GCNet label pickles).
        errors: decoding error handler (as :func:`pickle.load`).

    Raises:
        DataFormatError: the file is missing, is not a readable pickle, or is a pickle bomb (more
            elements, nesting or shared references than its size allows, a length field past the
            end of the file); memory, overflow and recursion errors are raised as this too.
        UnsafePickleError: the pickle references a global outside the allow-list; the message names
            the file and the global (e.g. ``os.system``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "<file>", "an existing pickle file", "no such file")
    with open(path, "rb") as fh:
        return _load(fh, os.fstat(fh.fileno()).st_size, str(path), encoding, errors)


def safe_loads(data: bytes, source: str = "<bytes>", encoding: str = "ASCII", errors: str = "strict"):
    """:func:`safe_load` for an in-memory pickle; ``source`` names it in error messages."""
    data = bytes(data)
    return _load(io.BytesIO(data), len(data), source, encoding, errors)


def _load(fh, size: int, source: str, encoding: str, errors: str):
    try:
        unpickler = _RestrictedUnpickler(_BoundedFile(fh, size), source=source, encoding=encoding,
                                         errors=errors)
        obj = unpickler.load()
        _check_result(obj, unpickler.limit)
        return obj
    except DataFormatError:
        raise
    except _Refused as exc:
        raise DataFormatError(source, exc.field, exc.expected, exc.found) from None
    except Exception as exc:  # noqa: BLE001 - anything a hostile file provokes (MemoryError too)
        raise DataFormatError(source, "<pickle>", "a readable pickle of numpy arrays and containers",
                              f"{type(exc).__name__}: {str(exc)[:200]}") from exc
