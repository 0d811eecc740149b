"""What can be wrong with the machine before a run starts: the data folder (a file, not writable, full)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

MIB = 1024 * 1024


class EnvironmentProblem(RuntimeError):
    """The run cannot work in this environment; the message is one line naming the path."""


def check_data_dir(data_dir: Path, min_free_mib: float) -> None:
    """Refuse a data folder that is a file, cannot be written, or sits on a disk with too little room."""
    folder = data_dir.resolve()
    existing = next((path for path in (folder, *folder.parents) if path.exists()), Path("/"))
    if not existing.is_dir():
        raise EnvironmentProblem(f"--data-dir {data_dir}: {existing} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise EnvironmentProblem(
            f"--data-dir {data_dir}: cannot write in {folder} ({_reason(exc)})"
        ) from None
    free_mib = shutil.disk_usage(folder).free / MIB
    if free_mib < min_free_mib:
        raise EnvironmentProblem(
            f"--data-dir {data_dir}: only {free_mib:.0f} MiB free on the disk of {folder}, "
            f"a run needs at least {min_free_mib:.0f} MiB (PERSONS_MIN_FREE_DISK_MIB)"
        )


PRIVATE_UMASK = 0o077


def keep_files_private() -> None:
    """Every file and folder the run creates from here on is its owner's alone (0600 / 0700): the warehouse,
    the landed files, the reports, the docs, dbt's output; the data folder holds personal data, even if
    anonymised, and other users of the machine have no business reading it."""
    os.umask(PRIVATE_UMASK)


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error (or its cause) is a full disk."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen):  # DuckDB and others wrap the OSError in their own type
            return True
        seen = seen.__cause__ or seen.__context__
    return False
