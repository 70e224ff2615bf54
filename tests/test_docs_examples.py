"""The examples in README.md and docs/*.md are right: every `collapseguard ...` line of a bash, sh or
console block names an existing command and only options it accepts, every relative link leads to
a file (and heading) that exists, and the blocks marked to run do run, on tiny inputs, in a
temporary folder.

A block's marker is the HTML comment on the line before its fence:

    <!-- docs-test: run setup=tiny-corpus,gen0 except=mvgaussian -->
    <!-- docs-test: check-only (why it does not run here: its time and memory, or what it needs) -->

`run` executes the block's commands in order, in-process, in a fresh folder prepared by the named
setups (SETUPS below), and requires exit code 0 from each; lines containing an `except` word (`|`
between several) are only option-checked. `check-only` needs its reason, so an example that takes
minutes says how long beside it. Every block carries one of the two.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from collapseguard.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "console", "shell"}
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced code block of a Markdown page, with the docs-test marker just above it."""
    lines = page.read_text(encoding="utf-8").split("\n")
    found, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(prev)
        found.append(Block(page, i + 1, m.group(1), marker.group(1) if marker else None, "\n".join(lines[i + 1:end])))
        i = end + 1
    return found


def shell_blocks() -> list[Block]:
    return [b for p in PAGES if p.exists() for b in blocks(p) if b.lang in SHELL]


def commands(block: Block) -> list[tuple[dict, list[str], str]]:
    """(environment, argv, line) per command of a block: `\\` continuations joined, comments and a
    console's `$ ` prompt dropped, `&&` chains split, leading VAR=value words taken as environment."""
    text = re.sub(r"\\\n\s*", " ", block.text)
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if block.lang == "console":
            if not line.startswith("$ "):
                continue  # output lines
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            part, words = words[:cut], words[cut + 1:]
            env = {}
            while part and re.match(r"^[A-Z_][A-Z0-9_]*=", part[0]):
                key, value = part.pop(0).split("=", 1)
                env[key] = value
            if part:
                out.append((env, part, line))
    return out


def resolve(argv: list[str]) -> tuple[click.Command, list[str]]:
    """The leaf command argv names, checking every option on the way; raise AssertionError naming the fault."""
    cmd, ctx, path = cli, click.Context(cli), ["collapseguard"]
    words = argv[1:]
    while True:
        names = option_names(cmd)
        i = 0
        while isinstance(cmd, click.Group) and i < len(words) and words[i].startswith("-"):
            assert words[i].split("=")[0] in names, f"`{' '.join(path)}` has no option {words[i]}"
            i += 1
        if not isinstance(cmd, click.Group):
            break
        assert i < len(words), f"`{' '.join(path)}` needs a subcommand"
        sub = cmd.get_command(ctx, words[i])
        assert sub is not None, f"`{' '.join(path)}` has no command {words[i]!r} ({', '.join(cmd.list_commands(ctx))})"
        cmd, path, words = sub, [*path, words[i]], words[i + 1:]
    names = option_names(cmd)
    for w in words:
        if re.match(r"^--?[A-Za-z]", w):
            assert w.split("=")[0] in names, f"`{' '.join(path)}` has no option {w}"
    return cmd, path


def option_names(cmd: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for p in cmd.params:
        if isinstance(p, click.Option):
            names |= set(p.opts) | set(p.secondary_opts)
    return names


def marker_fields(marker: str) -> dict[str, str]:
    return dict(f.split("=", 1) for f in marker.split() if "=" in f)


ALL = shell_blocks()


def test_the_pages_hold_examples():
    assert len(ALL) >= 20, [b.where for b in ALL]
    assert sum(1 for b in ALL if b.marker and b.marker.startswith("run")) >= 8


@pytest.mark.parametrize("block", ALL, ids=lambda b: b.where)
def test_every_command_line_names_a_command_and_its_options(block):
    assert block.marker, f"{block.where}: no `<!-- docs-test: ... -->` marker before the block"
    assert block.marker.startswith("run") or re.match(r"check-only \(.+\)", block.marker), (
        f"{block.where}: marker must be `run ...` or `check-only (reason)`, not {block.marker!r}")
    for _env, argv, line in commands(block):
        if argv[0] == "collapseguard":
            try:
                resolve(argv)
            except AssertionError as exc:
                raise AssertionError(f"{block.where}: {exc}\n  {line}") from None


def test_the_commands_help_shows_an_example_everywhere():
    """`collapseguard [GROUP] COMMAND --help` of every group and leaf shows at least one example line."""
    def walk(cmd, path, ctx):
        doc = cmd.help or ""
        examples = re.findall(r"^\s+(?:[A-Z_]+=\S+\s+)*(collapseguard .*)$", doc, re.M)
        assert re.search(r"\bExamples?\b[^\n]*:\s*$", doc, re.M) and examples, f"`{' '.join(path)} --help` shows no example"
        for ex in examples:
            resolve(shlex.split(ex.replace("\\", ""), comments=True))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name], ctx)

    walk(cli, ["collapseguard"], click.Context(cli))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page."""
    out, fence = set(), False
    for line in page.read_text(encoding="utf-8").split("\n"):
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^#+ (.*)", line)):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists()], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.relative_to(ROOT)}: link to {target}: no such heading"


# ----- running the examples -------------------------------------------------------------------


def human_texts(n: int, seed: int) -> list[str]:
    from guard_world import human_texts as words

    return words(n, seed)


def write_jsonl(path: Path, texts, **extra) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t, **extra}) + "\n" for t in texts), encoding="utf-8")


def machine_texts(n: int) -> list[str]:
    # a fixed pool of "known generations": the ledger holds them, and pasted copies are found
    return [" ".join(human_texts(1, 1000 + i)[0].split()[:40]) for i in range(n)]


@pytest.fixture(scope="module")
def gen0_dir(tmp_path_factory):
    """A tiny random GPT-2 with a word-level tokenizer over the corpus words (no training)."""
    pytest.importorskip("transformers")
    from guard_world import make_gen0, make_tokenizer

    path = tmp_path_factory.mktemp("gen0") / "gen0"
    make_gen0(path, make_tokenizer(path))
    return path


def setup_tiny_corpus(root: Path, gen0: Path) -> None:
    """data/a.jsonl (human), data/b.jsonl (human with known generations pasted in), gen.jsonl
    (the known generations), heldout.jsonl (held-out human text), and the names other pages use."""
    gens = machine_texts(40)
    write_jsonl(root / "data" / "a.jsonl", human_texts(30, 1))
    mixed = human_texts(20, 2) + [g + " " + h for g, h in zip(gens[:10], human_texts(10, 3))]
    write_jsonl(root / "data" / "b.jsonl", mixed)
    write_jsonl(root / "gen.jsonl", gens, origin="synthetic", generator="tiny-gpt", generation=1)
    write_jsonl(root / "heldout.jsonl", human_texts(80, 4))


def setup_files(root: Path, gen0: Path) -> None:
    """The file names of the detector and ledger pages: held-out human text for a 1% calibration
    (>= 99 texts, also as a folder), shards in three formats, a detect-dev style raw_data.json,
    labelled fit splits, known generations."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    machine = machine_texts(60)
    for name, seed in (("heldout_human.jsonl", 10), ("cal_h.jsonl", 11), ("heldout/a.jsonl", 18)):
        write_jsonl(root / name, human_texts(150, seed))
    write_jsonl(root / "fit_h.jsonl", human_texts(40, 12))
    write_jsonl(root / "fit_m.jsonl", machine[:40])
    for name in ("generations.jsonl", "known-generations.jsonl"):
        write_jsonl(root / name, machine[:40])
    for name in ("shard-001.jsonl", "shard.jsonl"):
        write_jsonl(root / name, human_texts(5, 13) + machine[40:45])
    for name in ("shard-000.parquet", "shard.parquet", "b.parquet"):
        pq.write_table(pa.table({"text": human_texts(5, 14) + machine[45:50]}), root / name)
    for name in ("docs.txt", "a.txt", "crawl.txt"):
        (root / name).write_text("\n".join(human_texts(3, 15) + machine[50:53]) + "\n", encoding="utf-8")
    (root / "doc.txt").write_text(human_texts(1, 16)[0] + " " + machine[53] + "\n", encoding="utf-8")
    (root / "xsum_gpt2-xl.raw_data.json").write_text(
        json.dumps({"original": human_texts(20, 17), "sampled": machine[:20]}), encoding="utf-8")


def setup_calibration(root: Path, gen0: Path) -> None:
    run_cli(["policy", "calibrate", "--human", "heldout.jsonl", "--machine", "gen.jsonl", "--fpr", "0.05",
             "--out", "guard-calibration.json"], root)


def setup_crawl(root: Path, gen0: Path) -> None:
    """crawl/**/*.jsonl.gz and a second policy, guard/collapseguard.toml, over the same ledger."""
    import gzip

    for i, seed in enumerate((20, 21)):
        path = root / "crawl" / f"2024-0{i + 1}" / "part-0.jsonl.gz"
        path.parent.mkdir(parents=True)
        path.write_bytes(gzip.compress("".join(json.dumps({"text": t}) + "\n" for t in human_texts(10, seed)).encode()))
    (root / "guard").mkdir()
    (root / "guard" / "collapseguard.toml").write_text(
        '[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\noptions = { ledger = "../gens.ledger" }\n', encoding="utf-8")


def setup_scanned(root: Path, gen0: Path) -> None:
    run_cli(["scan", "data/", "--out", "scan/"], root)


def setup_lineage(root: Path, gen0: Path) -> None:
    """raw/ with its manifest (the parent), and last-trusted/manifest.json: an earlier manifest of
    the dataset `my-corpus` (the one a verifier trusted before)."""
    write_jsonl(root / "raw" / "crawl.jsonl", human_texts(10, 30))
    run_cli(["provenance", "build", "raw/"], root)
    run_cli(["provenance", "build", "data/", "--name", "my-corpus", "--out", "last-trusted/manifest.json"], root,
            {"SOURCE_DATE_EPOCH": "1700000000"})  # made earlier than the one the example builds


def setup_pools(root: Path, gen0: Path) -> None:
    """wiki/ (human, 1,000 records), gen/ (synthetic, 2,000 records, with a manifest signed by
    ~/.keys/team) and that key pair."""
    write_jsonl(root / "wiki" / "a.jsonl", human_texts(500, 40))
    write_jsonl(root / "wiki" / "b.jsonl", human_texts(500, 41))
    write_jsonl(root / "gen" / "gen-1.jsonl", human_texts(2000, 42), origin="synthetic", generator="tiny-gpt",
                generation=1)
    run_cli(["provenance", "keygen", "--out", os.path.expanduser("~/.keys/team")], root)
    run_cli(["provenance", "build", "gen/"], root)
    run_cli(["provenance", "sign", "gen/manifest.json", "--key", os.path.expanduser("~/.keys/team")], root)


def setup_gen0(root: Path, gen0: Path) -> None:
    for name in ("gen0", "runs/gen0"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(gen0, target_is_directory=True)


def setup_ledger(root: Path, gen0: Path) -> None:
    run_cli(["ledger", "add", "gens.ledger", "gen.jsonl"], root)


def setup_policy(root: Path, gen0: Path) -> None:
    (root / "collapseguard.toml").write_text(
        'text_column = "text"\ncalibration = "guard-calibration.json"\nmax_synthetic_share = 0.5\n\n'
        '[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\noptions = { ledger = "gens.ledger" }\n', encoding="utf-8")


def setup_keys(root: Path, gen0: Path) -> None:
    run_cli(["provenance", "keygen", "--out", "keys/team"], root)


SETUPS = {"tiny-corpus": setup_tiny_corpus, "gen0": setup_gen0, "ledger": setup_ledger, "policy": setup_policy,
          "keys": setup_keys, "files": setup_files, "calibration": setup_calibration, "crawl": setup_crawl,
          "scanned": setup_scanned, "lineage": setup_lineage, "pools": setup_pools}


def run_cli(argv: list[str], cwd: Path, env: dict | None = None):
    old = Path.cwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(cli, argv, env=env)
    finally:
        os.chdir(old)
    assert res.exit_code == 0, f"`collapseguard {shlex.join(argv)}` exited {res.exit_code}:\n{res.output}"
    return res


RUN = [b for b in ALL if b.marker and b.marker.startswith("run")]


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.where)
def test_the_example_runs(block, tmp_path, gen0_dir, monkeypatch):
    fields = marker_fields(block.marker)
    setups = [s for s in fields.get("setup", "").split(",") if s]
    unknown = set(setups) - set(SETUPS)
    assert not unknown, f"{block.where}: unknown setup {unknown} (known: {sorted(SETUPS)})"
    skip = [w for w in fields.get("except", "").split("|") if w]
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in setups:
        SETUPS[name](tmp_path, gen0_dir)
    ran = 0
    for env, argv, line in commands(block):
        assert argv[0] == "collapseguard", f"{block.where}: a run block holds only collapseguard commands: {line}"
        if any(w in line for w in skip):
            continue
        args = [os.path.expanduser(a) for a in argv[1:]]
        try:
            run_cli(args, tmp_path, env)
        except AssertionError as exc:
            raise AssertionError(f"{block.where}: {exc}") from None
        ran += 1
    assert ran, f"{block.where}: nothing ran"
