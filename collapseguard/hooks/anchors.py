"""The hooks' trust anchors, read from a base revision instead of from the change they judge.

A change must not bring the trust that accepts it. The anchors are the guard policy, the baseline
of reviewed exceptions, the trusted public keys (the policy's `trusted_keys`, else every `*.pub`
in `.collapseguard/keys/` beside the policy) and the files the policy points to (calibration,
ledgers, models). The hooks read the policy, the baseline and the keys as they are at the base
revision: HEAD for pre-commit (the change is the index), `--from-ref REF` for CI and pre-push (the
change is the working tree). `Anchors.changes` lists the anchors the change touches, so a hook can
report them on their own. A repository without a commit has no base: its first commit defines the
anchors, read from the working tree.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from collapseguard.errors import CollapseguardError

KEY_DIR = ".collapseguard/keys"
OUTSIDE_GIT = ("not inside a git repository; the hooks read their trust anchors (policy, keys, baseline) "
               "from a git revision; outside git use `collapseguard provenance verify` and "
               "`collapseguard scan --fail-over-limit`")


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`git ARGS` in `root` (pathspecs taken literally); bytes out. A failure is a one-line error."""
    proc = subprocess.run(["git", "--literal-pathspecs", *args], cwd=root, capture_output=True)
    if proc.returncode:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CollapseguardError(f"git {args[0]} failed: {lines[-1] if lines else proc.returncode}")
    return proc


def repo_root(cwd: Path | None = None) -> Path:
    """The top folder of the git repository around `cwd`."""
    return _rev_parse(cwd, None)[0]


def _rev_parse(cwd: Path | None, ref: str | None) -> tuple[Path, str | None]:
    """The repository's top folder and, when given, the commit `ref` names (None when it names none)."""
    args = ["git", "rev-parse", "--show-toplevel"] + (["--verify", "--quiet", f"{ref}^{{commit}}"] if ref else [])
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise CollapseguardError("git is not installed; " + OUTSIDE_GIT.split("; ", 1)[1]) from None
    lines = proc.stdout.split("\n")
    if not lines[0]:
        raise CollapseguardError(f"{Path(cwd or Path.cwd())}: {OUTSIDE_GIT}")
    return Path(lines[0]), (lines[1].strip() or None) if proc.returncode == 0 and len(lines) > 1 else None


@dataclass(frozen=True)
class Base:
    """The revision whose anchors judge a change."""

    root: Path
    rev: str | None  # None: no commit yet; the first commit's anchors come from the working tree
    name: str  # as the user knows it: HEAD or the --from-ref given
    staged: bool  # the change is the index (pre-commit), else the working tree (CI, pre-push)


def find_base(from_ref: str | None = None, cwd: Path | None = None) -> Base:
    """HEAD (or no commit yet) for pre-commit; `from_ref` for CI and pre-push, which must exist."""
    name = from_ref or "HEAD"
    if name.startswith("-"):
        raise CollapseguardError(f"--from-ref {from_ref}: not a revision; pass a branch, tag or commit")
    root, rev = _rev_parse(cwd, name)
    if rev is None and from_ref:
        raise CollapseguardError(f"--from-ref {from_ref}: no such commit in {root}; fetch it first (e.g. "
                                 "`git fetch origin main`, or actions/checkout with fetch-depth: 0)")
    return Base(root, rev, name, staged=from_ref is None)


class Reader:
    """Files as the base holds them, through one `git cat-file --batch` (the working tree when no commit yet)."""

    def __init__(self, base: Base):
        self.base, self.proc = base, None
        if base.rev is not None:
            self.proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=base.root, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.stdout.close()
            self.proc.wait()

    def _object(self, rel: str) -> tuple[bytes, bytes | None]:
        """(type, content) of `rel` at the base; content None when it has no such path."""
        self.proc.stdin.write(f"{self.base.rev}:{rel}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) != 3 or header[-1] == b"missing":
            return b"missing", None
        data = self.proc.stdout.read(int(header[2]))
        self.proc.stdout.read(1)
        return header[1], data

    def read(self, rels) -> dict[str, bytes | None]:
        """The bytes of each repo-relative path (None where there is no such file)."""
        if self.proc is None:
            return {rel: _read_file(self.base.root / rel) for rel in rels}
        out = {}
        for rel in rels:
            kind, data = self._object(rel) if rel and "\n" not in rel else (b"missing", None)
            out[rel] = data if kind == b"blob" else None
        return out

    def folder(self, rel: str) -> list[str]:
        """Repo-relative paths of the files directly in folder `rel`."""
        if self.proc is None:
            folder = self.base.root / rel
            return sorted(f"{rel}/{p.name}" for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        kind, data = self._object(rel)
        if kind != b"tree":
            return []
        names, pos, oid_len = [], 0, len(self.base.rev) // 2
        while pos < len(data):  # entries: "<mode> <name>\0<raw object id>"
            end = data.index(b"\0", pos)
            mode, name = data[pos:end].split(b" ", 1)
            if not mode.startswith(b"4"):  # 40000: a folder
                names.append(f"{rel}/{name.decode()}")
            pos = end + 1 + oid_len
        return sorted(names)


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def changed_paths(base: Base, pathspecs=()) -> list[tuple[str, str]]:
    """(status letter A/M/D/T, repo-relative path) for what the change alters under `pathspecs`
    (every path when none is given). Without a base commit, every file in the index is added."""
    specs = ["--", *pathspecs] if pathspecs else []
    if base.rev is None:
        out = git(base.root, "ls-files", "-z", *specs).stdout
        return [("A", p.decode()) for p in out.split(b"\0") if p]
    cached = ["--cached"] if base.staged else []
    out = git(base.root, "diff", *cached, "--name-status", "-z", "--no-renames", base.rev, *specs).stdout
    parts = [p.decode() for p in out.split(b"\0") if p]
    return list(zip(parts[0::2], parts[1::2]))


def repo_relative(root: Path, path: str | Path) -> str | None:
    """`path` (relative to the current folder, or absolute) relative to the repository; None when outside."""
    full = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    try:
        return link_path(full).relative_to(link_path(root)).as_posix()
    except ValueError:
        return None


def link_path(path: str | Path) -> Path:
    """`path` absolute, `..` folded and its folders resolved, but not its last part (a symlink stays itself)."""
    import os

    path = Path(os.path.normpath(Path(path).absolute()))
    return path.parent.resolve() / path.name if path.name else path.resolve()


@dataclass
class Anchors:
    """The policy, baseline and trusted keys at the base, and every path whose change is reported."""

    base: Base
    policy_rel: str
    baseline_rel: str
    policy: bytes | None
    baseline: bytes | None
    keys: dict[str, bytes | None] = field(default_factory=dict)  # repo-relative key path -> bytes at the base
    outside_keys: list[Path] = field(default_factory=list)  # --public-key files outside the repository
    watched: list[str] = field(default_factory=list)

    def changes(self) -> list[tuple[str, str]]:
        """The anchors this change adds, modifies or deletes (none without a base commit)."""
        if self.base.rev is None:
            return []
        return changed_paths(self.base, self.watched)

    def trusted_keys(self) -> list:
        """Public keys for `verify_envelope`: the working file where it still holds the base's bytes,
        else the base's bytes written to a private temporary file."""
        import tempfile

        from collapseguard.provenance.keys import load_public_key

        keys: list = list(self.outside_keys)
        for rel, blob in self.keys.items():
            path = self.base.root / rel
            if blob is None:
                raise CollapseguardError(f"{rel}: trusted key listed in {self.policy_rel} is not in {self.base.name}; "
                                         "commit it on its own first")
            if _read_file(path) == blob:
                keys.append(path)
                continue
            with tempfile.TemporaryDirectory(prefix="collapseguard-key-") as tmp:
                copy = Path(tmp, Path(rel).name)
                copy.write_bytes(blob)
                keys.append(load_public_key(copy))
        return keys


def load_anchors(base: Base, policy_rel: str, baseline_rel: str, explicit_keys=()) -> Anchors:
    """Read the anchors at `base`. Explicit key files inside the repository are anchors too; those
    outside it (a CI secret, a path in the runner) are trusted as given."""
    with Reader(base) as reader:
        return _load(base, reader, policy_rel, baseline_rel, explicit_keys)


def _load(base: Base, reader: Reader, policy_rel: str, baseline_rel: str, explicit_keys) -> Anchors:
    blobs = reader.read([policy_rel, baseline_rel])
    raw = parse_toml(blobs[policy_rel], f"{base.name}:{policy_rel}") if blobs[policy_rel] is not None else {}
    policy_dir = PurePosixPath(policy_rel).parent
    key_dir = (policy_dir / KEY_DIR).as_posix()
    watched = [policy_rel, baseline_rel, key_dir, *referenced_paths(raw, policy_dir)]
    outside, key_rels = [], []
    if explicit_keys:
        for k in explicit_keys:
            rel = repo_relative(base.root, k)
            (outside.append(Path(k)) if rel is None else key_rels.append(rel))
    elif isinstance(raw.get("trusted_keys"), list):
        for k in (k for k in raw["trusted_keys"] if isinstance(k, str)):
            rel = _join(policy_dir, k)
            (key_rels.append(rel) if rel else outside.append(base.root / policy_dir / k))
    else:
        key_rels = [k for k in reader.folder(key_dir) if k.endswith(".pub")]
    watched += key_rels
    return Anchors(base, policy_rel, baseline_rel, blobs[policy_rel], blobs[baseline_rel],
                   reader.read(key_rels), outside, [w for w in dict.fromkeys(watched) if w])


def parse_toml(blob: bytes, where: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CollapseguardError(f"{where}: not valid TOML ({exc}); fix the policy in a commit of its own") from None


def referenced_paths(raw: dict, policy_dir: PurePosixPath) -> list[str]:
    """Repo-relative paths the policy points to: its calibration and every string option of its detectors
    (ledgers, models; a string that names no file matches nothing)."""
    values = [raw.get("calibration")]
    for table in raw.get("detectors") or []:
        if isinstance(table, dict) and isinstance(table.get("options"), dict):
            values += list(table["options"].values())
    return [_join(policy_dir, v) for v in values if isinstance(v, str) and v.strip()]


def _join(folder: PurePosixPath, rel: str) -> str:
    """`rel` inside `folder`, folded; '' when it leaves the repository or is absolute."""
    import posixpath

    joined = posixpath.normpath((folder / rel).as_posix())
    return "" if PurePosixPath(rel).is_absolute() or joined.startswith("..") else joined
