"""The output rule every writing command follows.

An existing output is replaced only when the same command wrote it with the same settings
(its marker file says so: resume and rerun) or the user passed ``--overwrite``. A command
never writes onto, into or around one of its own inputs, and never deletes what it did not
write. Refusals are CollapseguardError (one line, exit code 2) naming the path and the flag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from collapseguard.errors import CollapseguardError

MARKER = ".collapseguard-output.json"


def _normalise(settings: dict) -> dict:
    """Settings as they round-trip through JSON (tuples -> lists, paths -> strings)."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def _stat_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _chain(path: Path) -> list[tuple[int, int]]:
    """Inode ids of `path` (when it exists) and of every existing folder above it."""
    ids = []
    for p in (path, *path.parents):
        sid = _stat_id(p)
        if sid is not None:
            ids.append(sid)
    return ids


def _clash(out: Path, inp: Path, *, contains: bool) -> bool:
    """True when `out` is `inp` or lies inside it (or, with `contains`, holds it)."""
    out, inp = out.resolve(), inp.resolve()
    if out == inp or inp in out.parents or (contains and out in inp.parents):
        return True
    iid = _stat_id(inp)
    if iid is not None and iid in _chain(out):
        return True
    oid = _stat_id(out)
    return contains and oid is not None and oid in _chain(inp)


def check_not_input(path: str | Path, inputs: Iterable[str | Path], *, contains: bool = True) -> None:
    """Refuse (always, whatever --overwrite says) an output that is, lies inside or holds an input."""
    for inp in inputs:
        if inp is None:
            continue
        if _clash(Path(path), Path(inp), contains=contains):
            raise CollapseguardError(
                f"{path}: output would overwrite the input {inp}; write the output somewhere else")


def read_marker(path: str | Path) -> dict | None:
    """The marker of an output folder, or None when it has none (or an unreadable one)."""
    try:
        marker = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return marker if isinstance(marker, dict) else None


def _differences(old: dict, new: dict, limit: int = 3) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def write_marker(path: Path, command: str, settings: dict) -> None:
    """Record which command wrote the folder `path`, with which settings."""
    from collapseguard import __version__
    from collapseguard.io.atomic import write_text_atomic

    marker = {"command": command, "settings": _normalise(settings), "collapseguard": __version__}
    write_text_atomic(path / MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")


def _holds_output(path: Path) -> bool:
    """Whether the folder holds anything besides a marker (a run that failed before writing
    leaves only the marker, and a corrected rerun must not be refused because of it)."""
    return any(p.name != MARKER for p in path.iterdir())


def claim_output_dir(path: str | Path, *, command: str, settings: dict, overwrite: bool = False,
                     inputs: Iterable[str | Path] = (), ours: Callable[[Path], bool] | None = None) -> Path:
    """Make the folder `path` ours, or refuse with one line naming it and --overwrite.

    Absent or empty: create it with a marker holding `command` and `settings`. Marked by the
    same command with equal settings, or recognised by `ours(path)` (outputs written before
    markers existed): accept it (resume, rerun). Anything else: accept only
    with `overwrite` (the marker is rewritten; nothing is deleted). A folder that is, holds or
    lies inside one of `inputs` is refused even with `overwrite`.
    """
    path = Path(path)
    check_not_input(path, inputs)
    if path.exists() and not path.is_dir():
        raise CollapseguardError(f"{path}: exists and is not a folder; choose another output folder")
    settings = _normalise(settings)
    if path.is_dir() and _holds_output(path):
        marker = read_marker(path)
        same = marker is not None and marker.get("command") == command
        if same and marker.get("settings") == settings:
            return path
        if marker is None and ours is not None and ours(path):
            write_marker(path, command, settings)
            return path
        if not overwrite:
            if same:
                why = f"was written by `collapseguard {command}` with other settings ({_differences(marker.get('settings') or {}, settings)})"
            elif marker is not None:
                why = f"was written by `collapseguard {marker.get('command')}`"
            else:
                why = "already holds files this command did not write"
            raise CollapseguardError(f"{path}: {why}; pass --overwrite to write into it anyway, or choose another output folder")
    path.mkdir(parents=True, exist_ok=True)
    write_marker(path, command, settings)
    return path


@contextmanager
def claimed_output_dir(path: str | Path, lock: bool = False, **claim) -> Iterator[Path]:
    """claim_output_dir for the length of a `with` block; if the block fails, the empty folders
    it made are removed, and if it wrote nothing but the marker, the marker and every folder the
    claim created are removed too, so a failed run leaves nothing that blocks the corrected rerun.
    With `lock`, a second run into the same folder at the same time is refused (flock)."""
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    had_marker = (path / MARKER).exists()
    folders = _folders(path)
    claim_output_dir(path, **claim)
    held = _lock(path, claim.get("command", "")) if lock else None
    try:
        yield path
    except BaseException:
        remove_empty_folders_below(path, keep=folders)
        if not had_marker and path.is_dir() and not _holds_output(path):
            (path / MARKER).unlink(missing_ok=True)
            remove_empty_folders(created)
        raise
    finally:
        if held is not None:
            os.close(held)


def _lock(path: Path, command: str) -> int | None:
    """An exclusive advisory lock on the folder (released when the process ends, even when killed);
    refused in one line while another run holds it. None where flock is missing (not POSIX)."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise CollapseguardError(f"{path}: another `collapseguard {command}` is writing into this folder now; "
                                 "wait for it to finish, or choose another output folder") from None
    return fd


def _folders(path: Path) -> set[str]:
    """Every folder under `path` (relative paths), as it is now."""
    return {os.path.relpath(os.path.join(top, d), path) for top, dirs, _ in os.walk(path) for d in dirs}


def remove_empty_folders_below(path: Path, keep: set[str]) -> None:
    """Remove the empty folders under `path` that are not in `keep` (those a failed run made), deepest first."""
    for top, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            folder = os.path.join(top, d)
            if os.path.relpath(folder, path) not in keep:
                try:
                    os.rmdir(folder)
                except OSError:
                    pass


def remove_empty_folders(created: list[Path]) -> None:
    """Remove the folders a command `created` (innermost first), stopping at the first that is not empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def check_output_file(path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = (),
                      ours: Callable[[Path], bool] | None = None) -> Path:
    """Refuse an existing output file unless `overwrite` (or `ours(path)` recognises it as this
    command's own output with the same settings); always refuse one of the `inputs`.

    An output inside an input folder (a saved dataset) counts as writing onto the input.
    """
    path = Path(path)
    check_not_input(path, inputs, contains=False)
    if path.is_dir():
        raise CollapseguardError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not overwrite and not (ours is not None and ours(path)):
        raise CollapseguardError(f"{path}: already exists; pass --overwrite to replace it, or choose another output file")
    return path
