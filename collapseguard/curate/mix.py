"""Build a training mix with an exact human share, sampled without replacement, written as shards
with provenance columns plus a manifest (signed with a key) whose parents are the pools' manifests.

Shares are exact in records (`size`) or in whitespace-word tokens (`tokens`: a token is a
maximal run of non-whitespace, `len(text.split())`). The human count is round(F x N) (half up),
the synthetic count the rest. In token mode records are taken in the sampling order until the
next one would overshoot; that one is cut to a prefix ending at the word that meets the count
exactly (its `parent_ids` name the full record), so at most one record per origin is cut.

Sampling order: each eligible record gets the key sha256(seed, text sha256, occurrence) and
the records with the smallest keys are taken; the mix is written in key order (a shuffle). The
order depends only on the seed and the texts, so the same inputs give byte-identical output.

Trust: every pool is verified before it is read, against the `manifest.json` in its folder (or
beside a pool file): a trusted signature, no unlisted, changed or removed file. A pool without a
manifest, or with an unsigned one, is refused unless `allow_unsigned`, which the output's
manifest records with what was (and was not) verified per pool.

A record counts as human only when it sits in a human pool, its own `origin` column (if any)
does not say otherwise, and the pool's scan attributes (if given) neither flagged it `synthetic`
nor abstained on it (`keep="human+abstain"` takes the abstentions too, and says how many). A
record of a synthetic pool whose `origin` says human or unknown is left out too. Records with no
text (null, not a string, no words) or that cannot be read (not UTF-8, a JSON line that is not
an object) are never taken: a reason to abstain is not data.

Paths in the outputs (the `source` column, the request, the parents, the folder marker) are
relative to the output folder, never absolute.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from collapseguard.errors import CollapseguardError
from collapseguard.io import columns as pc
from collapseguard.provenance.manifest import relative_to_folder  # a local path as published

TOKENIZER = "whitespace words (len(text.split()))"
KEEP = ("human", "human+abstain")
PART = "part-{:05d}.parquet"
BATCH = 4096


@dataclass(frozen=True)
class CurateConfig:
    """One curation request; the CLI fills the same dataclass."""

    human: tuple[str, ...] = ()
    synthetic: tuple[str, ...] = ()
    human_fraction: float = 0.5
    size: int | None = None  # records in the mix
    tokens: int | None = None  # whitespace-word tokens in the mix
    seed: int = 0
    text_column: str = "text"
    attributes: tuple[str, ...] = ()  # `collapseguard scan --out` folders of the pools
    shard_records: int = 100_000
    public_keys: tuple[str, ...] = ()  # trusted keys the pools' manifests must be signed with
    allow_unsigned: bool = False  # accept pools without a manifest or with an unsigned one
    keep: str = "human"  # "human+abstain": records the scan abstained on count as human too

    def check(self) -> None:
        f = self.human_fraction
        if not isinstance(f, (int, float)) or not 0.0 <= f <= 1.0:
            raise CollapseguardError(f"--human-fraction must be in [0, 1], got {f}")
        if (self.size is None) == (self.tokens is None):
            raise CollapseguardError("pass exactly one of --size N (records) or --tokens T (whitespace words)")
        total = self.size if self.size is not None else self.tokens
        if total < 1:
            raise CollapseguardError(f"--{'size' if self.size is not None else 'tokens'} must be at least 1, got {total}")
        if self.keep not in KEEP:
            raise CollapseguardError(f"--keep must be one of {', '.join(KEEP)}, got {self.keep!r}")
        if self.shard_records < 1:
            raise CollapseguardError(f"--shard-records must be at least 1, got {self.shard_records}")
        human, synthetic = self.targets()
        if human and not self.human:
            raise CollapseguardError(f"the mix needs {human} human {self.unit} but no --human pool was given")
        if synthetic and not self.synthetic:
            raise CollapseguardError(f"the mix needs {synthetic} synthetic {self.unit} but no --synthetic pool was given; "
                                     "pass one or use --human-fraction 1")

    @property
    def unit(self) -> str:
        return "records" if self.size is not None else "tokens"

    def targets(self) -> tuple[int, int]:
        """(human, synthetic) counts in `unit`: human = round(F x total), half up, exactly."""
        total = self.size if self.size is not None else self.tokens
        human = int(Fraction(str(self.human_fraction)) * total + Fraction(1, 2))
        return human, total - human


def count_tokens(text: str) -> int:
    """Whitespace words: the token count curation uses."""
    return len(text.split())


def cut_to_tokens(text: str, k: int) -> str:
    """The prefix of `text` that ends with its k-th whitespace word (original spacing kept)."""
    for i, m in enumerate(re.finditer(r"\S+", text), 1):
        if i == k:
            return text[:m.end()]
    return text


@dataclass
class Pool:
    """One pool argument: its shards, attribute files, manifest and what was read from it."""

    path: str
    kind: str  # "human" | "synthetic"
    shards: list
    attributes: dict  # shard rel -> attribute parquet path
    manifest: Path | None
    trust: dict | None = None  # what verifying the pool found: manifest, signed, keyids
    read: int = 0
    no_text: int = 0
    unreadable: int = 0
    declared_other: int = 0
    flagged: int = 0
    abstained: int = 0  # the scan abstained: left out (keep "human") or kept (keep "human+abstain")
    unscanned: int = 0
    eligible: int = 0
    eligible_tokens: int = 0
    attributes_given: bool = False
    keep_abstained: bool = False

    @property
    def abstained_left_out(self) -> int:
        return 0 if self.keep_abstained else self.abstained

    def left_out(self) -> int:
        return self.no_text + self.unreadable + self.declared_other + self.flagged + self.abstained_left_out

    def report(self, out: Path) -> dict:
        trust = dict(self.trust or {})
        if trust.get("manifest"):
            trust["manifest"] = relative_to_folder(trust["manifest"], out)
        return {"path": relative_to_folder(self.path, out), "kind": self.kind, "shards": len(self.shards),
                "records": self.read, "eligible": self.eligible, "eligible_tokens": self.eligible_tokens,
                "no_text": self.no_text, "unreadable": self.unreadable, "origin_disagrees": self.declared_other,
                "flagged_synthetic": self.flagged,
                "abstained_left_out": self.abstained_left_out,
                "abstained_eligible_as_human": self.abstained - self.abstained_left_out,
                "without_scan": self.unscanned if self.attributes_given else None, "trust": trust}


def open_pools(config: CurateConfig) -> list[Pool]:
    """Every pool's shards, verified against its manifest, and the scan attributes that match them;
    refuses a shard that is in two pools, a pool that does not verify, attributes made from other
    bytes, and an attributes folder that matches no pool shard (the scan of another folder)."""
    from collapseguard.io.shards import discover

    scans = [scan_index(Path(d), config.text_column) for d in config.attributes]
    pools, seen = [], {}
    for kind, paths in (("human", config.human), ("synthetic", config.synthetic)):
        for path in paths:
            shards = discover([path])
            for s in shards:
                real = str(s.path.resolve())
                if real in seen:
                    raise CollapseguardError(f"{s.path}: is in two pools ({seen[real]} and {path}); pass each shard once")
                seen[real] = path
            manifest = pool_manifest(Path(path))
            trust = verify_pool(Path(path), manifest, shards, config)
            digests = shard_digests(shards) if scans else {}
            pool = Pool(path, kind, shards, match_attributes(shards, digests, scans), manifest, trust)
            pool.attributes_given = bool(scans)
            pool.keep_abstained = config.keep == "human+abstain"
            pools.append(pool)
    used = {str(p) for pool in pools for p in pool.attributes.values()}
    for scan in scans:
        if not any(str(p) in used for p in scan["by_sha"].values()):
            raise CollapseguardError(f"{scan['folder']}: matches no shard of the pools (no scanned input has the sha256 "
                                     "of a pool shard): the scan of another folder or of other bytes; pass the scan of "
                                     "these pools, or rescan them")
    return pools


def shard_digests(shards) -> dict:
    from collapseguard.io.shards import shard_sha256

    return {s.rel: shard_sha256(s) for s in shards}


def pool_manifest(path: Path) -> Path | None:
    """The pool's `manifest.json`: inside a pool folder, or beside a pool file."""
    candidate = (path if path.is_dir() else path.parent) / "manifest.json"
    return candidate if candidate.is_file() else None


def verify_pool(path: Path, manifest: Path | None, shards, config: CurateConfig) -> dict:
    """Verify a pool against its manifest (trusted signature, every file listed and unchanged) and
    return what was verified; refuse a pool that does not verify, or has no manifest or an unsigned
    one without `allow_unsigned`."""
    from collapseguard.provenance.verify import VerificationFailed, verify_statement

    if manifest is None:
        if not config.allow_unsigned:
            raise CollapseguardError(f"{path}: no manifest.json to verify the pool against; build and sign one "
                                     "(`collapseguard provenance build`, `sign`) and pass --public-key, or pass "
                                     "--allow-unsigned (recorded in the output's manifest)")
        return {"manifest": None, "signed": False, "keyids": []}
    try:
        statement, report = verify_statement(manifest, config.public_keys, allow_unsigned=config.allow_unsigned)
    except VerificationFailed as exc:
        keys = "; pass the signer's key with --public-key" if "no trusted public key" in str(exc) else ""
        raise CollapseguardError(f"{path}: the pool does not verify against {manifest}: {exc}{keys}") from None
    listed = {s["name"] for s in statement["subject"]}
    root = os.path.abspath(manifest.parent)
    for shard in shards:
        name = Path(os.path.relpath(os.path.abspath(shard.path), root)).as_posix()
        if shard.path.is_file() and name not in listed:
            raise CollapseguardError(f"{shard.path}: not listed in {manifest}; a pool's shards must all be in its "
                                     "manifest: rebuild and sign it, or take the file out of the pool")
    return {"manifest": str(manifest), "signed": report["signed"], "keyids": report["keyids"]}


def scan_index(folder: Path, text_column: str) -> dict:
    """input sha256 -> attribute shard, from a `collapseguard scan --out` folder's summary."""
    from collapseguard.io.readers import read_json_file

    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise CollapseguardError(f"{folder}: no summary.json; pass a `collapseguard scan --out` folder to --attributes")
    summary = read_json_file(summary_path, "scan summary", "rerun `collapseguard scan`")
    if summary.get("text_column") not in (None, text_column):
        raise CollapseguardError(f"{folder}: was scanned on column {summary['text_column']!r}, not {text_column!r}; "
                                 "pass the same --text-column or rescan")
    index = {}
    for row in summary.get("shards") or []:
        index[row["input_sha256"]] = folder / "attributes" / f"{row['shard']}.parquet"
    return {"folder": folder, "by_sha": index, "by_rel": {row["shard"] for row in summary.get("shards") or []}}


def match_attributes(shards, digests: dict, scans: list) -> dict:
    """shard rel -> its attribute shard; refuses attributes of the same name made from other bytes."""
    found = {}
    for shard in shards:
        for scan in scans:
            hit = scan["by_sha"].get(digests.get(shard.rel))
            if hit is not None:
                found[shard.rel] = hit
                break
        else:
            for scan in scans:
                if shard.rel in scan["by_rel"]:
                    raise CollapseguardError(
                        f"{scan['folder']}/attributes/{shard.rel}.parquet: made from other bytes than {shard.path} "
                        "(input sha256 differs); rescan the pool with `collapseguard scan`")
    return found


def read_attributes(path: Path, shard, texts: list) -> dict:
    """The evidence columns of an attribute shard, checked row by row against the shard's texts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise CollapseguardError(f"{path}: not a readable attribute shard ({exc}); rescan the pool") from None
    for c in ("sha256", "decision"):
        if c not in table.schema.names:
            raise CollapseguardError(f"{path}: no column {c!r}; pass attributes written by `collapseguard scan`")
    if table.num_rows != len(texts):
        raise CollapseguardError(f"{path}: {table.num_rows} rows for {len(texts)} records of {shard.path}; "
                                 "the attributes do not belong to this shard, rescan it")
    ev = pc.normalise({c: table.column(c).to_pylist() for c in ("decision", "reason") if c in table.schema.names}, path)
    digests = table.column("sha256").to_pylist()
    for i, (d, t) in enumerate(zip(digests, texts)):
        if d is not None and isinstance(t, str) and d != pc.text_sha256(t):
            raise CollapseguardError(f"{path}: row {i} has another text's sha256 than record {i} of {shard.path}; "
                                     "the attributes are not row-aligned with this shard, rescan it")
    skip = {"source", "index", "sha256", "decision", "reason"}
    scores = {f.name: table.column(f.name).to_pylist() for f in table.schema
              if f.name not in skip and pa.types.is_floating(f.type)}
    return {**ev, "scores": scores}


def shard_records(shard, text_column: str):
    """(texts, provenance columns) of one whole shard, checked."""
    texts, prov = [], {}
    from collapseguard.io.shards import iter_chunks

    for chunk in iter_chunks(shard, text_column, BATCH):
        cols = chunk_provenance(shard, chunk)
        for name, values in cols.items():
            prov.setdefault(name, [None] * len(texts)).extend(values)
        for name in prov:
            if name not in cols:
                prov[name].extend([None] * len(chunk))
        texts.extend(chunk.texts)
    return texts, prov


def chunk_provenance(shard, chunk) -> dict:
    """The provenance columns a chunk's raw records carry (parquet columns, JSON fields)."""
    if shard.fmt in ("parquet", "datasets"):
        return pc.from_batch(chunk.raw, shard.path, chunk.start)
    if shard.fmt == "jsonl":
        records = []
        for line in chunk.raw:
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append(None)
        return pc.from_records(records, shard.path, chunk.start)
    return {}


def priority(seed: int, digest: str, occurrence: int) -> int:
    """The sampling key of a record: the first 8 bytes of sha256(seed, text sha256, occurrence)."""
    h = hashlib.sha256(f"collapseguard-curate\0{seed}\0{digest}\0{occurrence}".encode()).digest()
    return int.from_bytes(h[:8], "big")


def index_pool(pool: Pool, config: CurateConfig, seen: dict) -> list[tuple]:
    """Eligible records of one pool as (key, tokens, shard number, row); tallies what was left out."""
    from collapseguard.io.shards import Unreadable

    out = []
    for s_i, shard in enumerate(pool.shards):
        texts, prov = shard_records(shard, config.text_column)
        att = read_attributes(pool.attributes[shard.rel], shard, texts) if shard.rel in pool.attributes else None
        pool.read += len(texts)
        declared = prov.get("origin") or [None] * len(texts)
        for row, text in enumerate(texts):
            if isinstance(text, Unreadable):  # the reason a record cannot be read is never its text
                pool.unreadable += 1
                continue
            n_tok = count_tokens(text) if isinstance(text, str) else 0
            if not n_tok:
                pool.no_text += 1
                continue
            if declared[row] not in (None, pool.kind):
                pool.declared_other += 1
                continue
            if pool.kind == "human" and att is not None and att["decision"][row] == "synthetic":
                pool.flagged += 1
                continue
            if pool.kind == "human" and att is not None and att["decision"][row] == "abstain":
                pool.abstained += 1
                if not pool.keep_abstained:
                    continue
            if att is None:
                pool.unscanned += 1
            digest = pc.text_sha256(text)
            occurrence = seen.get((pool.kind, digest), 0)
            seen[(pool.kind, digest)] = occurrence + 1
            out.append((priority(config.seed, digest, occurrence), n_tok, s_i, row))
            pool.eligible += 1
            pool.eligible_tokens += n_tok
    if pool.read == 0:
        raise CollapseguardError(f"{pool.path}: the {pool.kind} pool holds no records; pass a pool with data")
    return out


def select(cands: list[tuple], target: int, unit: str) -> list[tuple]:
    """The records with the smallest keys: `target` of them (records), or as many as meet
    `target` tokens, the last cut to fit; each as (key, tokens kept, pool, shard, row, cut)."""
    ordered = sorted(cands)
    if unit == "records":
        return [(*c, False) for c in ordered[:target]]
    taken, total = [], 0
    for c in ordered:
        if total == target:
            break
        keep = min(c[1], target - total)
        taken.append((c[0], keep, *c[2:], keep < c[1]))
        total += keep
    return taken


def refuse_short(kind: str, pools: list[Pool], need: int, config: CurateConfig) -> None:
    have = sum(p.eligible if config.unit == "records" else p.eligible_tokens for p in pools)
    if have >= need:
        return
    left = sum(p.left_out() for p in pools)
    read = sum(p.read for p in pools)
    abstained = sum(p.abstained_left_out for p in pools)
    why = (f" ({read} records read, {left} left out: " + ", ".join(
        f"{n} {what}" for n, what in ((sum(p.flagged for p in pools), "flagged synthetic by scan"),
                                      (abstained, "the scan abstained on (--keep human+abstain takes them)"),
                                      (sum(p.declared_other for p in pools), "with another declared origin"),
                                      (sum(p.unreadable for p in pools), "unreadable"),
                                      (sum(p.no_text for p in pools), "without text")) if n) + ")") if left else ""
    raise CollapseguardError(
        f"the {kind} pools hold {have} eligible {config.unit}{why}, the mix needs {need} "
        f"({config.human_fraction if kind == 'human' else 1 - config.human_fraction:g} of "
        f"{config.size if config.size is not None else config.tokens}); lower --size/--tokens or change "
        f"--human-fraction, or add {kind} data")


def plan(config: CurateConfig) -> tuple[list[Pool], list[tuple]]:
    """Open and index the pools and choose the records: (pools, chosen records in mix order)."""
    config.check()
    pools = open_pools(config)
    targets = dict(zip(("human", "synthetic"), config.targets()))
    chosen, seen = [], {}
    for kind in ("human", "synthetic"):
        cands = []
        for p_i, pool in enumerate(pools):
            if pool.kind == kind:
                cands += [(key, n, p_i, s_i, row) for key, n, s_i, row in index_pool(pool, config, seen)]
        refuse_short(kind, [p for p in pools if p.kind == kind], targets[kind], config)
        chosen += [(c[0], 0 if kind == "human" else 1, *c[1:]) for c in select(cands, targets[kind], config.unit)]
    chosen.sort()
    return pools, chosen


def materialise(pools: list[Pool], chosen: list[tuple], config: CurateConfig, out: Path):
    """The mix as a pyarrow Table with the provenance schema, in the chosen order (a record without
    a `source` of its own gets its shard's path relative to `out`, and its index)."""
    import pyarrow as pa

    wanted: dict[tuple, list[int]] = {}
    for pos, (_, _, _, p_i, s_i, _row, _) in enumerate(chosen):
        wanted.setdefault((p_i, s_i), []).append(pos)
    rows: list = [None] * len(chosen)
    score_names: set = set()
    for (p_i, s_i), positions in sorted(wanted.items()):
        pool = pools[p_i]
        shard = pool.shards[s_i]
        texts, prov = shard_records(shard, config.text_column)
        att = read_attributes(pool.attributes[shard.rel], shard, texts) if shard.rel in pool.attributes else None
        if att is not None:
            score_names |= set(att["scores"])
        where = relative_to_folder(shard.path, out)
        for pos in positions:
            _, _, kept, _, _, row, cut = chosen[pos]
            rows[pos] = output_row(pool.kind, where, row, texts[row], prov, att, kept if cut else None)
    scores = tuple(sorted(score_names))
    schema = pc.schema(config.text_column, scores)
    data = {config.text_column: [r["text"] for r in rows]}
    for name in pc.PROVENANCE + pc.EVIDENCE:
        data[name] = [r[name] for r in rows]
    for name in scores:
        data[name] = [r["scores"].get(name) for r in rows]
    return pa.table(data, schema=schema)


def output_row(kind: str, where: str, row: int, text: str, prov: dict, att: dict | None, cut: int | None) -> dict:
    """One output record of a `kind` pool's shard `where`: the text (cut to `cut` tokens when
    given) and its provenance."""
    def given(name):
        values = prov.get(name)
        return None if values is None else values[row]

    digest = pc.text_sha256(text)
    parents = given("parent_ids") or []
    if cut is not None:
        text = cut_to_tokens(text, cut)
        parents, digest = [digest], pc.text_sha256(text)
    evidence = att if att is not None else {}
    return {
        "text": text, "origin": kind, "source": given("source") or f"{where}#{row}",
        "license": given("license"), "generator": given("generator"), "generation": given("generation"),
        "parent_ids": parents, "sha256": digest,
        "decision": evidence["decision"][row] if "decision" in evidence else given("decision"),
        "reason": evidence["reason"][row] if "reason" in evidence else given("reason"),
        "scores": {k: v[row] for k, v in evidence.get("scores", {}).items()},
    }


def published_request(config: CurateConfig, out: Path) -> dict:
    """The request as the outputs state it: local paths relative to `out`."""
    request = asdict(config)
    for field in ("human", "synthetic", "attributes", "public_keys"):
        request[field] = [relative_to_folder(p, out) for p in request[field]]
    return request


def summary(config: CurateConfig, pools: list[Pool], table, out: Path) -> dict:
    """What the mix holds and how it was made (the manifest's `curation` field)."""
    origins = table.column("origin").to_pylist()
    texts = table.column(config.text_column).to_pylist()
    records = pc.origin_counts(origins)
    tokens = dict.fromkeys(pc.ORIGINS, 0)
    for o, t in zip(origins, texts):
        tokens[o] += count_tokens(t)
    unit_counts = records if config.unit == "records" else tokens
    total = sum(unit_counts.values())
    request = {k: v for k, v in published_request(config, out).items() if k not in ("shard_records",)}
    return {"request": request, "unit": config.unit, "tokenizer": TOKENIZER,
            "targets": dict(zip(("human", "synthetic"), config.targets())),
            "records": records, "tokens": tokens,
            "human_share": unit_counts["human"] / total if total else None,
            "keep": config.keep,
            "abstained_kept_as_human": sum(o == "human" and d == "abstain" for o, d in
                                           zip(origins, table.column("decision").to_pylist())),
            "allow_unsigned": config.allow_unsigned,
            "pools": [p.report(out) for p in pools]}


def shard_names(rows: int, shard_records: int) -> list[str]:
    """`data/part-NNNNN.parquet` names, relative to the output folder, for `rows` records."""
    return [f"data/{PART.format(i)}" for i in range(max(1, -(-rows // shard_records)))]


def write_shards(table, out: Path, names: list[str], shard_records: int) -> None:
    """The mix as shards of `shard_records` records each (atomic writes)."""
    from collapseguard.io.atomic import write_parquet_atomic

    for i, name in enumerate(names):
        write_parquet_atomic(table.slice(i * shard_records, shard_records), out / name)


def clear_stale(out: Path, keep: list[str], ours: bool) -> None:
    """Remove part files an earlier curate run left in `out/data` that this run does not write."""
    data = out / "data"
    if not data.is_dir():
        return
    stale = [p for p in sorted(data.iterdir()) if p.relative_to(out).as_posix() not in keep]
    if stale and not ours:
        raise CollapseguardError(f"{data}: holds files curate did not write ({stale[0].name}); choose an empty output folder")
    for p in stale:
        if re.fullmatch(r"part-\d{5}\.parquet", p.name):
            p.unlink()
        else:
            raise CollapseguardError(f"{p}: not a curate shard; choose an empty output folder")


def curate(config: CurateConfig, out, *, key=None, overwrite: bool = False, extra: dict | None = None,
           name: str | None = None) -> dict:
    """Build the mix into `out`: shards, then `manifest.json` (a DSSE envelope when `key` is given)
    naming the dataset `name` (default: the folder's name). Returns the curation summary. `extra`
    adds fields to it (e.g. how the fraction was chosen)."""
    from collapseguard.io.outputs import claim_output_dir, read_marker
    from collapseguard.provenance.manifest import build_statement, dataset_identity, write_manifest

    out = Path(out)
    config.check()
    if key is not None:
        from collapseguard.provenance.keys import load_private_key

        load_private_key(key)  # a wrong key fails before any work
    pools, chosen = plan(config)
    table = materialise(pools, chosen, config, out)
    manifest = out / "manifest.json"  # the identity first: an unreadable earlier manifest stops before any write
    identity = dataset_identity(name or out.resolve().name, previous=manifest if manifest.is_file() else None)
    previous = read_marker(out) if out.is_dir() else None
    if extra and extra.get("file"):
        extra = {**extra, "file": relative_to_folder(extra["file"], out)}
    settings = {**published_request(config, out), "signed": key is not None, **({"chosen_by": extra} if extra else {})}
    claim_output_dir(out, command="curate", settings=settings, overwrite=overwrite,
                     inputs=[*config.human, *config.synthetic, *config.attributes])
    names = shard_names(table.num_rows, config.shard_records)
    clear_stale(out, names, ours=previous is not None and previous.get("command") == "curate")
    write_shards(table, out, names, config.shard_records)
    info = summary(config, pools, table, out)
    info["cut_records"] = sum(1 for c in chosen if c[-1])
    if extra:
        info["chosen_by"] = extra
    parents = list(dict.fromkeys(p.manifest for p in pools if p.manifest is not None))
    statement = build_statement(out, names, parents=parents, extra={"curation": info}, dataset=identity)
    if key is not None:
        from collapseguard.provenance.dsse import sign_statement

        statement = sign_statement(statement, key)
    write_manifest(manifest, statement)
    return {**info, "out": str(out), "files": names, "signed": key is not None}
