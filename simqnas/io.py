"""Atomic file output: every result is written under a temporary name and renamed into place."""

from __future__ import annotations

import glob
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

_TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries of `target` whose writer, a process on this host, no longer runs (a killed
    job's); those of live writers and of other hosts stay. Returns what was removed."""
    prefix, host = f".{target.name}.", socket.gethostname()
    removed = []
    for path in target.parent.glob(f"{glob.escape(prefix)}*{_TMP_SUFFIX}"):
        owner = path.name[len(prefix) : -len(_TMP_SUFFIX)].rsplit(".", 2)
        if len(owner) == 3 and owner[0] == host and owner[1].isdigit() and not _alive(int(owner[1])):
            with suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    A killed or failing writer leaves no partial file under the final name; the temporary a killed writer
    leaves behind (named after its host and process) is removed by the next write of the same file. The
    output gets the permissions a plain `open()` would give it (0666 less the umask), not the temporary's
    private 0600.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{socket.gethostname()}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # the block may have replaced the file (e.g. a library writing to the path): set the mode last
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
