"""One process per run directory: an exclusive lock, held for the whole run (train or --resume).

The lock is `OUT/.lock`, a `filelock.FileLock` (flock on POSIX). The kernel drops it when its
process ends, however it ends, so the file a killed run leaves behind (a stale lock) never blocks
the next run. The holder writes its pid into the file, and a second process is refused naming it.
Taking the lock is also the first write into `--out`, so an unwritable `--out` is refused before
data preparation and model building.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ja_adapt.core.errors import UserError

LOCK_NAME = ".lock"


def _holder(lock_file: Path) -> str:
    """The pid the holding process wrote into the lock file ('unknown' while it is writing it)."""
    try:
        return lock_file.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold `out`'s lock (creating `out` when needed) for the body; UserError when another process
    holds it or `out` cannot be written. A directory created here that holds nothing but the lock
    on exit (the run was refused before writing anything) is removed again."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    created = not out.exists()
    lock_file = out / LOCK_NAME
    lock = FileLock(str(lock_file), timeout=0)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        lock_file.write_text(f"{os.getpid()}\n")
    except Timeout:
        raise UserError(
            f"{out}: in use by another ja-adapt process (pid {_holder(lock_file)}); wait "
            "for it to finish, or choose another --out"
        ) from None
    except OSError as e:
        raise UserError(f"{out}: cannot write here ({e.strerror or e}); choose a writable --out") from None
    try:
        yield
    finally:
        # unlinked before it is unlocked: a process that opened the old file sees it is gone
        with contextlib.suppress(OSError):
            lock_file.unlink()
        lock.release()
        if created:
            with contextlib.suppress(OSError):  # not empty: the run wrote something, keep it
                out.rmdir()


def is_lock(path: Path) -> bool:
    """True for the lock file, which does not make a run directory non-empty."""
    return path.name == LOCK_NAME
