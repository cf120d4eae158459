"""Writing files so that nothing already stored is lost, overwritten by halves or raced.

Every file sbi-astro writes goes through here:

* :func:`atomic_write` writes to a temporary file ``NAME.tmp<pid>`` beside the target,
  ``fsync`` s it, then renames it over the target (``os.replace``, atomic on POSIX) and
  ``fsync`` s the directory: a reader sees the old file or the new one, never a mix, and a
  kill at any moment leaves the old file intact.
* :func:`publish_exclusive` moves a finished temporary file to a name that must not exist
  yet, atomically and exclusively (a hard link, which fails if the name exists): of two
  processes creating the same file at the same moment exactly one wins.
* :class:`ExclusiveLock` is an advisory ``flock`` on ``NAME.lock`` that records its holder
  (pid, host, start time), so that a second writer is refused with a message naming the
  first.  The kernel drops the lock when its holder dies, even by ``kill -9``.
* :func:`remove_stale_temporaries` deletes ``NAME.tmp<pid>`` files whose process is gone
  (left by a kill); it runs before each write, so they never accumulate.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> with atomic_write(path) as tmp:
    ...     _ = tmp.write_text("{}")
    >>> path.read_text()
    '{}'
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import StoreError

_TMP = re.compile(r"^(?P<target>.+)\.tmp(?P<pid>\d+)$")


def temporary_name(path: Path) -> Path:
    """The temporary file this process writes before publishing ``path``."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Deletes the ``PATH.tmp<pid>`` files (or directories) of processes that are gone.

    Returns:
        The paths removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        m = _TMP.match(entry.name)
        if not m or m["target"] != path.name or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                import shutil

                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


def fsync_directory(directory: Path) -> None:
    """Makes a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces ``path`` atomically.

    On an exception (or ``KeyboardInterrupt``) the temporary file is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def publish_exclusive(tmp: Path, path: Path, *, what: str = "file") -> None:
    """Gives the finished temporary file ``tmp`` the name ``path``, which must not exist.

    Atomic and exclusive: a hard link fails with ``EEXIST`` when ``path`` exists, even if
    another process created it a microsecond ago.  ``tmp`` is removed in every case.

    Raises:
        StoreError: ``path`` exists (created concurrently by another process).
    """
    try:
        os.link(tmp, path)
    except FileExistsError as err:
        raise StoreError(f"{path} was created by another process while this one was "
                         f"preparing the same {what}; nothing was overwritten. Wait for that "
                         "process, then re-run to resume, or choose another path") from err
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: O_EXCL reserves the name, the rename fills it
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError as err2:
            raise StoreError(f"{path} was created by another process while this one was "
                             f"preparing the same {what}; nothing was overwritten") from err2
        os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_directory(path.parent)


class ExclusiveLock:
    """An exclusive, non-blocking advisory lock on ``PATH.lock`` naming its holder.

    Args:
        path: the file the lock protects (the lock file is ``PATH.lock``).
        purpose: what the holder is doing, e.g. ``"campaign"`` (shown to a refused process).

    Raises:
        StoreError: on :meth:`acquire`, when another live process holds the lock; the
            message names its pid, host and start time.
    """

    def __init__(self, path: str | Path, purpose: str):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> ExclusiveLock:
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise StoreError(
                    f"{self.path} is in use by another {holder.get('purpose', 'process')} "
                    f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                    f"{holder.get('started', '?')}); wait for it to finish or stop it, then "
                    "re-run. Nothing was changed") from None
            # the lock file may have been unlinked by its previous holder between our open
            # and our flock: then we hold a lock on a dead inode and must retry
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "purpose": self.purpose,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.lock_path.unlink()
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> ExclusiveLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int, wait: float = 1.0) -> dict:
    """The holder's record; a holder that has just taken the lock may not have written it
    yet, so an empty or partial record is read again for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            doc = json.loads(os.read(fd, 4096).decode())
            if isinstance(doc, dict) and "pid" in doc:
                return doc
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.01)
