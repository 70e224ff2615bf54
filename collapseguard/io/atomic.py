"""Write outputs to a temporary name and rename them into place, so a killed run leaves no half file."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | Path, directory: bool = False) -> None:
    """Give `path` the mode a plain open()/mkdir() would: 0o666 (files) or 0o777 (folders)
    less the umask. mkstemp and mkdtemp create 0600/0700, which teammates cannot read."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        apply_umask(tmp, directory=os.path.isdir(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_folder(path: str | Path):
    """Yield a fresh temporary folder beside `path`; on success a new `path` is renamed into place
    whole, an existing one receives each file by an atomic rename (files it already holds that
    are not rewritten stay). The temporary folder, created here, is removed in every case."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        apply_umask(tmp, directory=True)
        if not path.exists():
            os.replace(tmp, path)
            return
        for f in sorted(tmp.iterdir()):
            os.replace(f, path / f.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)  # only the temporary folder made above


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_parquet_atomic(table, path: str | Path) -> None:
    """Write a pyarrow Table as parquet atomically."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
