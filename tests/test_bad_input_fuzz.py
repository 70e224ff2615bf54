"""Every reader, through the CLI, fed random bytes, truncations, spliced bytes and wrong types:
the command either reads the input (data files may hold odd records: they abstain) or exits 2
with one stderr line and writes nothing; it never raises, never exits 1, never changes an input.
Configuration files (policy, calibrations, ledger, keys, learned model) must be refused outright
for the mutations that cannot leave them valid."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bad_input import build_guard, build_learned, documents, invoke, snapshot
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")  # the dedup extra: minhash_v1 ledger
pytest.importorskip("datasets")
pytest.importorskip("cryptography")

NAN = float("nan")
# replacement values for a JSON/TOML field; {} and [] are left out (an empty container is often valid)
VALUES = [None, True, -1, 1.5, "x", [1], {"a": 1}, NAN]
POLICY = ('text_column = "text"\nmax_synthetic_share = 0.05\nbatch_size = 64\nmax_chars = 100000\n'
          'trusted_keys = ["k.pub"]\n[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\n'
          'options = { ledger = "gens.ledger" }\n')


@dataclass
class Reader:
    """A file the command reads, the command (paths relative to the world), and which mutations
    must always be refused (`strict`); anything else may also be read."""

    file: str
    args: list
    strict: set = field(default_factory=set)
    fmt: str = "bytes"  # json or toml: wrong types can be put into a field
    loose_fields: tuple = ()  # field paths whose wrong type need not be refused (informational)
    verifies: bool = False  # `provenance verify`: exit 1 "verification failed" is a valid answer


def scan(path: str) -> list:
    """`scan` of one input (a multi-shard scan keeps the shards it finished before a bad one: resume)."""
    return ["scan", path, "--policy", "fixed.toml", "--out", "out"]


SCAN = scan("data/a.jsonl")
VERIFY = ["provenance", "verify", "s.json", "--public-key", "k.pub", "--root", "data"]
LEARNED = ["detect", "score", "t.txt", "--detector", "learned_v1", "--model", "m", "--out", "out.parquet"]
READERS = {
    "jsonl": Reader("data/a.jsonl", scan("data/a.jsonl")),
    "text": Reader("data/b.txt", scan("data/b.txt")),
    "parquet": Reader("data/c.parquet", scan("data/c.parquet")),
    "saved dataset arrow": Reader("data/ds/data-00000-of-00001.arrow", scan("data/ds")),
    "saved dataset state": Reader("data/ds/state.json", scan("data/ds"), fmt="json"),
    "saved dataset info": Reader("data/ds/dataset_info.json", scan("data/ds"), fmt="json"),
    "detect input": Reader("t.txt", LEARNED),
    "policy": Reader("fixed.toml", SCAN, {"random", "retype"}, fmt="toml"),
    "policy calibration": Reader("cal.json", ["scan", "data/a.jsonl", "--policy", "cal.toml", "--out", "out"],
                                 {"random", "truncate", "retype"}, fmt="json"),
    "detector calibration": Reader("c.json", [*LEARNED, "--calibration", "c.json"], {"random", "truncate", "retype"},
                                   fmt="json", loose_fields=("identity",)),  # the fingerprint decides, not the identity
    "ledger header": Reader("gens.ledger/header.json", ["ledger", "query", "gens.ledger", "t.txt"],
                            {"random", "truncate", "retype"}, fmt="json"),
    "ledger state": Reader("gens.ledger/state.json", ["ledger", "query", "gens.ledger", "t.txt"],
                           {"random", "truncate", "retype"}, fmt="json"),
    "ledger chunk": Reader("gens.ledger/chunk-000000.npz", ["ledger", "query", "gens.ledger", "t.txt"],
                           {"random", "truncate", "splice"}),
    "learned model": Reader("m/model.npz", LEARNED, {"random", "truncate"}),
    "learned metadata": Reader("m/learned.json", LEARNED, {"random", "truncate", "retype"}, fmt="json"),
    "manifest": Reader("data/manifest.json", ["provenance", "card", "data/manifest.json", "--allow-unsigned",
                                              "--out", "card.md"], {"random", "truncate"}, fmt="json", verifies=True),
    "signed manifest": Reader("s.json", VERIFY, {"random", "truncate"}, fmt="json", verifies=True),
    "private key": Reader("k", ["provenance", "sign", "m.json", "--key", "k"], {"random", "truncate"}),
    "public key": Reader("k.pub", VERIFY, {"random", "truncate"}, verifies=True),
}


def run_ok(*args):
    res = invoke([str(a) for a in args])
    assert res.exit_code == 0, (args, res.output, res.exception)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every file of READERS, valid; each example works on a copy."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from collapseguard.detectors.calibration import calibrate, save_calibration
    from collapseguard.detectors.learned import LearnedConfig, LearnedDetector

    root = build_guard(tmp_path_factory.mktemp("fuzz"))
    (root / "fixed.toml").write_text(POLICY)
    (root / "data" / "b.txt").write_text("\n".join(documents(4, 3)) + "\n")
    pq.write_table(pa.table({"text": documents(4, 4), "n": list(range(4))}), root / "data" / "c.parquet")
    datasets.Dataset.from_dict({"text": documents(4, 5)}).save_to_disk(str(root / "data" / "ds"))
    build_learned(root / "m")
    (root / "t.txt").write_text("\n".join(documents(3, 6)) + "\n")
    det = LearnedDetector(LearnedConfig(str(root / "m")))
    save_calibration(calibrate(det, documents(12, 7), 0.1), root / "c.json")
    run_ok("provenance", "build", root / "data", "--out", root / "m.json")
    run_ok("provenance", "build", root / "data")  # data/manifest.json, for `card` (it verifies the files first)
    run_ok("provenance", "keygen", "--out", root / "k")
    shutil.copy(root / "m.json", root / "s.json")
    run_ok("provenance", "sign", root / "s.json", "--key", root / "k")
    for reader in READERS.values():  # the valid world passes every command
        with copy_of(root) as w:
            res = run_in(w, reader.args)
            assert res.exit_code == 0, (reader.args, res.output, res.exception)
    return root


class copy_of:
    def __init__(self, root: Path):
        self.root = root

    def __enter__(self) -> Path:
        self.tmp = tempfile.TemporaryDirectory()
        w = Path(self.tmp.name) / "w"
        shutil.copytree(self.root, w, symlinks=True)
        return w

    def __exit__(self, *_):
        self.tmp.cleanup()


def run_in(w: Path, args):
    """The command with its relative paths (and the ledger option) under `w`."""
    names = {str(p.relative_to(w)) for p in w.iterdir()} | {"out", "out.parquet", "card.md"}
    return invoke([str(w / a) if a.split("/")[0] in names else a for a in args])


# ---- mutations -------------------------------------------------------------------------------------
def truncate(data: bytes, share: float) -> bytes:
    """A strict prefix that cuts into the content (not only trailing whitespace)."""
    return data[: min(int(len(data.rstrip()) * share), len(data.rstrip()) - 1)]


def splice(data: bytes, share: float, blob: bytes) -> bytes:
    at = int(len(data) * share)
    return data[:at] + blob + data[at + len(blob):]


byte_mutations = st.one_of(
    st.tuples(st.just("random"), st.binary(max_size=120)),
    st.tuples(st.just("truncate"), st.floats(0, 0.999)),
    st.tuples(st.just("splice"), st.tuples(st.floats(0, 0.999), st.binary(min_size=1, max_size=8))),
)


def mutate(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    if kind == "random":
        return arg
    if kind == "truncate":
        return truncate(data, arg)
    return splice(data, *arg)


def leaves(obj, path=()):
    """Every (path, value) of a parsed JSON/TOML document, containers included."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, (*path, i))


def kind(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def replaced(doc, path, value):
    if not path:
        return value
    out = json.loads(json.dumps(doc, allow_nan=True))
    target = out
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return out


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, (int, float, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"


def dump_toml(doc: dict) -> str:
    top = {k: v for k, v in doc.items() if k != "detectors" or not isinstance(v, list)
           or not all(isinstance(t, dict) for t in v)}
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in top.items()]
    for table in doc.get("detectors", []) if "detectors" not in top else []:
        lines += ["[[detectors]]", *(f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def load_doc(reader: Reader, data: bytes):
    if reader.fmt == "toml":
        import tomllib

        return tomllib.loads(data.decode())
    return json.loads(data)


def dump_doc(reader: Reader, doc) -> bytes:
    return (dump_toml(doc) if reader.fmt == "toml" else json.dumps(doc)).encode()


# ---- the checks -----------------------------------------------------------------------------------
def check(world: Path, reader: Reader, make_bytes, strict: bool):
    with copy_of(world) as w:
        target = w / reader.file
        original = target.read_bytes()
        mutated = make_bytes(original)
        assume(mutated != original)  # a splice or retype that changed nothing is no bad input
        target.write_bytes(mutated)
        before = snapshot(w)
        res = run_in(w, reader.args)
        assert "Traceback" not in res.output, res.output
        failed_check = reader.verifies and res.exit_code == 1 and res.stderr.startswith("verification failed")
        assert res.exit_code in (0, 2) or failed_check, (reader.file, res.exit_code, res.output, repr(res.exception))
        if res.exit_code in (1, 2):
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("verification failed" if failed_check else "Error: "), res.stderr
            assert snapshot(w) == before, "a refused command wrote or changed files"
        else:
            assert not strict, f"{reader.file}: a mutation that cannot be valid was accepted: {res.output[-300:]}"
            after = snapshot(w)
            outputs = ("out", "out.parquet", "card.md", "s.json", "m.json")
            assert {k: v for k, v in after.items() if k.split("/")[0] not in outputs and k in before} == \
                   {k: v for k, v in before.items() if k.split("/")[0] not in outputs}, "an input changed"


# about 0.04 s of CPU an example; the same cases each run (tests/conftest.py); for a deeper, random search:
# HYPOTHESIS_PROFILE=explore COLLAPSEGUARD_FUZZ_EXAMPLES=2000
FUZZ = settings(max_examples=int(os.environ.get("COLLAPSEGUARD_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(name=st.sampled_from(sorted(READERS)), mutation=byte_mutations)
@example(name="public key", mutation=("splice", (0.3125, b"/")))  # names an unknown key algorithm
@example(name="saved dataset arrow", mutation=("splice", (0.75, b"\x80")))  # bad UTF-8 in an Arrow column
@example(name="learned model", mutation=("random", b""))
def test_random_bytes_truncations_and_splices(world, name, mutation):
    reader = READERS[name]
    check(world, reader, lambda data: mutate(data, mutation), strict=mutation[0] in reader.strict)


@FUZZ
@given(name=st.sampled_from(sorted(n for n, r in READERS.items() if r.fmt != "bytes")), data=st.data())
def test_wrong_types_in_every_field(world, name, data):
    reader = READERS[name]
    doc = load_doc(reader, (world / reader.file).read_bytes())
    path, old = data.draw(st.sampled_from(list(leaves(doc))[1:]), label="field")
    choices = [v for v in VALUES if kind(v) != kind(old) and not (reader.fmt == "toml" and v is None)]
    value = data.draw(st.sampled_from(choices), label="value")
    # null for a field, or a value for a null field, can be valid (optional fields): read or refused, never a traceback
    loose = value is None or old is None or any(path[: len(p.split("."))] == tuple(p.split(".")) for p in reader.loose_fields)
    check(world, reader, lambda _: dump_doc(reader, replaced(doc, path, value)), strict="retype" in reader.strict and not loose)
