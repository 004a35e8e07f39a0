"""Atomic file writes, safe checkpoint loads and paths that stay inside their folder.

Every writer goes to a temporary file in the same folder, flushes and fsyncs it, then
``os.replace``-s it over the target (atomic on POSIX). The temporary file is removed on any exception
(Ctrl-C and ``SystemExit`` included); one left by a writer that was killed outright (SIGTERM, SIGKILL,
a power cut) is never read, and the next successful write of the same target removes it
(:func:`remove_stale_temps`). ``append_jsonl`` appends one complete line
with a single ``write`` on an ``O_APPEND`` descriptor, so concurrent writers never interleave lines;
``read_jsonl`` skips torn or corrupt lines and says which.

:func:`load_checkpoint` is the one way mser reads a ``.pt`` file: ``torch.load(weights_only=True)``,
so a checkpoint planted in a shared results folder cannot run code. :func:`inside` checks that a
path built from a record field or a data id stays inside its folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import socket
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ..data.validate import DataFormatError, inside  # noqa: F401 (inside: re-exported)


class LinkRefused(OSError):
    """A path inside a results folder is a symbolic link: mser neither writes through nor deletes behind it."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        super().__init__(f"{path}: a symbolic link inside a results folder; mser does not follow links there "
                         "(a planted link could make it write or delete elsewhere): remove it")


def refuse_links(path: str | Path, root: str | Path | None = None) -> Path:
    """``path`` when neither it nor a folder between ``root`` (exclusive) and it is a symbolic link, else
    :class:`LinkRefused` naming the link. ``root`` itself (e.g. a results folder the user linked) may be one."""
    path = Path(path)
    parts = [path, *path.parents]
    if root is not None:
        root = Path(root)
        parts = [p for p in parts if p != root and root in p.parents]
    for p in parts:
        if p.is_symlink():
            raise LinkRefused(p)
    return path


#: This host, in the name of a temporary file (a pid only means something on the host that wrote it).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
#: A temporary file of an atomic write older than this (seconds since its last change) belongs to a dead writer.
STALE_TEMP_AGE_S = 15 * 60
# After ``.<target name>.``: ``<host>-<pid>-<random>.tmp`` (this writer), or ``<random>.tmp`` (writers before
# the pid was in the name); ``<random>`` is tempfile's 8 characters. No dot inside, so the temporary files of
# another target (``.<name>.<x>.<...>.tmp``) never match.
_TEMP_TAIL = re.compile(r"(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-)?[a-z0-9_]{8}\.tmp")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (in doubt: yes)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temps(path: str | Path, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove the temporary files that dead writers of ``path`` left beside it; returns those removed.

    A candidate is a regular file (never a link, never a folder) named ``.<name of path>.<tail>.tmp`` as
    :func:`atomic_write_bytes` names them. It is removed when this host's process that wrote it is gone, or,
    when that cannot be told (another host, a name without a pid), when it has not changed for ``max_age_s``
    seconds. A live writer's file is left alone; so is every other file. Never raises for a file it cannot
    remove (another writer may have removed it first)."""
    path = Path(path)
    prefix = f".{path.name}."
    now, removed = time.time(), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        m = _TEMP_TAIL.fullmatch(entry.name[len(prefix):])
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            pid = int(m["pid"]) if m["pid"] else None
            dead = pid is not None and m["host"] == _HOST and pid != os.getpid() and not _alive(pid)
            if dead or now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder (named for this host and
    process), flushed and fsynced, then ``os.replace``-d over ``path``. On any exception (``KeyboardInterrupt``
    and ``SystemExit`` included) the temporary file is removed and ``path`` is left as it was; after a
    successful write, temporary files that dead writers of ``path`` left are removed
    (:func:`remove_stale_temps`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}-", suffix=".tmp")
    replaced = False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    remove_stale_temps(path)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def atomic_torch_save(obj, path: str | Path) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location="cpu"):
    """``torch.load(path, map_location, weights_only=True)``: tensors, numbers, strings and
    containers only (what :func:`atomic_torch_save` writes for the trainer).

    Raises:
        DataFormatError: the file holds anything else (a pickled callable would run code), is not a
            checkpoint, or was written before RNG states were stored as tensors (delete it or
            retrain with ``force``); the message names the file.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
        found = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
        raise DataFormatError(path, "<checkpoint>", "a checkpoint of tensors, numbers, strings and containers "
                              "(loaded with weights_only=True; delete an old or foreign checkpoint, or retrain "
                              "with force)", found) from exc


_CONFIG_HASH = re.compile(r"[0-9a-f]{16}")


def check_config_hash(value, file: str | Path = "runs.jsonl record") -> str:
    """``value`` if it is a config hash (16 lowercase hex characters), else a DataFormatError: a
    record's hash names a checkpoint folder, so ``"../../.."`` must never get that far."""
    if not isinstance(value, str) or not _CONFIG_HASH.fullmatch(value):
        raise DataFormatError(file, "config_hash", "16 lowercase hex characters", repr(value)[:80])
    return value


RECORD_EXPECTED = ("a run's record: one JSON object whose config_hash is the name of its folder, as mser writes it "
                   "(delete it, or its checkpoints folder: the run is then retrained when needed)")


def read_record(path: str | Path) -> dict:
    """The record in a run's ``checkpoints/<hash>/record.json``.

    Raises:
        DataFormatError: one line naming the file, when it is not one JSON object (truncated, empty, not
            UTF-8) or its ``config_hash`` is not the name of its folder.
        OSError: it cannot be read (``FileNotFoundError`` when it is not there).
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, "<record>", RECORD_EXPECTED, f"bytes that are not UTF-8 (at byte {exc.start} "
                              f"of {len(raw)})") from None
    except json.JSONDecodeError as exc:
        found = ("an empty file" if not raw.strip() else
                 f"{len(raw)} bytes that are not JSON ({exc.msg}: character {exc.pos}; truncated?)")
        raise DataFormatError(path, "<record>", RECORD_EXPECTED, found) from None
    except RecursionError:
        raise DataFormatError(path, "<record>", RECORD_EXPECTED, "JSON nested too deeply") from None
    if not isinstance(rec, dict):
        raise DataFormatError(path, "<record>", RECORD_EXPECTED, f"a JSON {type(rec).__name__}")
    if rec.get("config_hash") != path.parent.name:
        raise DataFormatError(path, "config_hash", f"{path.parent.name!r}, the name of its folder (delete the file, "
                              "or its checkpoints folder: the run is then retrained when needed)",
                              repr(rec.get("config_hash"))[:80])
    return rec


# folder -> {record.json path: (mtime_ns, size, inode)} of the records found sound in this process
_SOUND_RECORDS: dict[str, dict[str, tuple[int, int, int]]] = {}


def check_records(checkpoints: str | Path) -> None:
    """Read every ``<checkpoints>/*/record.json`` (what the reproduction report reads at the end of a
    ``make reproduce``) with :func:`read_record`, so that a damaged one stops a grid before any training
    rather than the report after it. A file already found sound and unchanged since is not read again.

    Raises:
        DataFormatError: the first damaged record, named (see :func:`read_record`).
    """
    folder = Path(checkpoints)
    sound = _SOUND_RECORDS.setdefault(str(folder.absolute()), {})
    for path in sorted(folder.glob("*/record.json")):
        try:
            st = path.stat()
        except FileNotFoundError:      # removed meanwhile (a run being retrained)
            continue
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sound.get(str(path)) == key:
            continue
        try:
            read_record(path)
        except FileNotFoundError:
            continue
        sound[str(path)] = key


class SkippedLinesWarning(UserWarning):
    """:func:`read_jsonl` skipped torn or corrupt lines (the message names the file and the lines)."""


def jsonl_line(record: dict) -> str:
    """One record as ``runs.jsonl`` holds it: keys sorted, one line, newline-terminated."""
    return json.dumps(record, sort_keys=True, default=_jsonable) + "\n"


def write_jsonl(path: str | Path, records: list[dict]) -> Path:
    """Replace the JSONL file ``path`` with ``records``, atomically (one :func:`jsonl_line` each)."""
    return atomic_write_text(path, "".join(jsonl_line(r) for r in records))


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append ``record`` as one whole JSON line (one ``write`` call, fsynced).

    If the file does not end in a newline (a writer died mid-line), a newline is written first so
    the torn line cannot swallow this record. A short write is completed, or the line is closed
    with a newline and an ``OSError`` naming the file is raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = jsonl_line(record).encode("utf-8")
    if path.is_symlink():
        raise LinkRefused(path)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        written = os.write(fd, line)
        while written < len(line):
            n = os.write(fd, line[written:])
            if n <= 0:
                os.write(fd, b"\n")
                raise OSError(f"{path}: wrote {written} of {len(line)} bytes of a record; the line was closed")
            written += n
        os.fsync(fd)
    finally:
        os.close(fd)


class ExclusiveLock:
    """An exclusive, non-blocking ``flock`` on the file ``path`` for the duration of a ``with`` block: a second
    process that asks for it meanwhile gets ``busy()`` (an exception) at once. The file is created if needed,
    opened without following a link (:class:`LinkRefused`) and never truncated; the lock goes with the process,
    however it ends, so a crash leaves nothing to delete."""

    def __init__(self, path, busy):
        self.path = Path(path)
        self.busy = busy
        self.fd = None

    def __enter__(self):
        import errno
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LinkRefused(self.path) from None
            raise
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise self.busy() from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)         # closing releases the lock
            self.fd = None
        return False


def read_jsonl(path: str | Path) -> list[dict]:
    """All complete records of a JSONL file (:func:`read_jsonl_numbered` without the line numbers)."""
    return [rec for _, rec in read_jsonl_numbered(path, stacklevel=3)]


def read_jsonl_numbered(path: str | Path, stacklevel: int = 2) -> list[tuple[int, dict]]:
    """``(line number, record)`` of every complete record of a JSONL file (1-based line numbers).

    Lines that are not a JSON object (torn by a crash mid-write, corrupt, or not UTF-8) are skipped,
    with one :class:`SkippedLinesWarning` naming the file and the line numbers; the other records are
    still returned.
    """
    path = Path(path)
    if not path.exists():
        return []
    out, bad = [], []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            bad.append(number)
            continue
        if isinstance(rec, dict):
            out.append((number, rec))
        else:
            bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:20])) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
        warnings.warn(f"{path}: skipped {len(bad)} unreadable line(s) (torn, corrupt or not UTF-8): "
                      f"line {shown}", SkippedLinesWarning, stacklevel=stacklevel)
    return out


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)
