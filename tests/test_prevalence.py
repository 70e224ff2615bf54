"""Prevalence: the distributional estimator on mixtures with a known fraction, Rogan-Gladen when its
assumptions fail, the policy's [prevalence] table, the scan summary with both estimators, and
filter's handling of records the scan abstained on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from collapseguard.errors import CollapseguardError
from collapseguard.scan.distributional import (
    estimate_share,
    fit_references,
    log_likelihood,
    mixture_mle,
    occurrences,
)
from collapseguard.scan.policy import load_policy
from collapseguard.scan.prevalence import synthetic_share
from collapseguard.scan.summary import fmt_share

LETTERS = "bcdfghjklmnp"
WORDS = [a + "o" + b for a in LETTERS for b in LETTERS[:6]]  # 72 words
rng0 = np.random.default_rng(123)
P_HUMAN = rng0.uniform(0.02, 0.4, len(WORDS))
P_MACHINE = np.clip(P_HUMAN * rng0.lognormal(0.0, 0.5, len(WORDS)), 0.01, 0.8)


def documents(p: np.ndarray, n: int, rng) -> list[str]:
    """Documents whose words occur independently with probabilities `p` (one unit per document)."""
    return [" ".join(w for w, hit in zip(WORDS, rng.random(len(WORDS)) < p) if hit) or WORDS[0] for _ in range(n)]


def mixture(alpha: float, n: int, rng) -> list[str]:
    k = int(round(alpha * n))
    return documents(P_HUMAN, n - k, rng) + documents(P_MACHINE, k, rng)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(7)
    return fit_references(documents(P_HUMAN, 3000, rng), documents(P_MACHINE, 3000, rng), unit="document",
                          min_units=5, calibrate=False)


def test_mle_is_the_grid_maximum_of_the_corpus_likelihood(model):
    texts = mixture(0.3, 400, np.random.default_rng(1))
    log_ratio = model.log_ratio(occurrences(texts, model.vocab, "document"))
    grid = np.linspace(0.0, 1.0, 10_001)
    best = grid[np.argmax([log_likelihood(log_ratio, a) for a in grid])]
    assert mixture_mle(log_ratio) == pytest.approx(best, abs=2e-4)
    assert log_likelihood(log_ratio, mixture_mle(log_ratio)) >= max(log_likelihood(log_ratio, a) for a in grid) - 1e-6


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5])
def test_interval_covers_the_known_fraction(model, alpha):
    """Over 20 mixtures drawn from the two word distributions, the 95% interval covers alpha nearly
    always, and the estimates centre on it."""
    rng = np.random.default_rng(int(alpha * 100) + 5)
    hits, estimates = 0, []
    for rep in range(20):
        r = estimate_share(model, mixture(alpha, 300, rng), draws=200, seed=rep)
        hits += r["low"] - 1e-9 <= alpha <= r["high"] + 1e-9
        estimates.append(r["estimate"])
    assert hits >= 17
    assert abs(np.mean(estimates) - alpha) < 0.03


def test_mle_sits_on_the_boundary_when_the_corpus_is_one_class(model):
    rng = np.random.default_rng(3)
    assert estimate_share(model, documents(P_MACHINE, 300, rng), draws=100)["estimate"] > 0.95
    assert estimate_share(model, documents(P_HUMAN, 300, rng), draws=100)["estimate"] < 0.05


def test_calibration_leaves_a_well_specified_model_nearly_unchanged():
    rng = np.random.default_rng(11)
    human, machine = documents(P_HUMAN, 1500, rng), documents(P_MACHINE, 1500, rng)
    cal = fit_references(human, machine, unit="document", calibrate=True)
    assert cal.scale == pytest.approx(1.0, abs=0.15) and abs(cal.shift) < 0.3
    r = estimate_share(cal, mixture(0.2, 400, rng), draws=200)
    assert r["low"] <= 0.2 <= r["high"]


def test_a_corpus_written_unlike_both_references_is_an_assumption_failure(model):
    """Word rates of a third writer (another 'domain') lie far from every mix of P and Q: no share."""
    rng = np.random.default_rng(9)
    other = np.clip(rng.permutation(P_HUMAN) * 1.5, 0.01, 0.9)
    r = estimate_share(model, documents(other, 300, rng), draws=100)
    assert r["kind"] == "assumption_failed" and r["estimate"] is None and r["low"] is None
    assert r["mismatch"] > 3 and "do not describe it" in r["note"]
    assert estimate_share(model, mixture(0.3, 300, rng), draws=100)["mismatch"] < 1


def test_references_without_shared_words_are_refused():
    with pytest.raises(CollapseguardError, match="share no word"):
        fit_references(["alpha beta"] * 10, ["gamma delta"] * 10, calibrate=False)


# --- Rogan-Gladen when the calibrated rates do not describe the corpus --------------------------

def test_flag_share_above_tpr_is_an_assumption_failure_not_certainty():
    """The issue's case: flag share 0.25, calibrated TPR 0.10 -> not 1.00 [1.00, 1.00]."""
    s = synthetic_share(50, 200, (4, 200), (20, 200))
    assert s["kind"] == "assumption_failed"
    assert s["estimate"] is None and s["low"] is None and s["high"] is None
    assert "above the calibrated TPR" in s["note"] and "do not describe this corpus" in s["note"]
    assert "100.00%" not in fmt_share(s) and "25.00%" in fmt_share(s)


def test_over_limit_falls_back_to_the_flag_share_when_the_rates_fail():
    from collapseguard.scan.summary import combine_over_limit, over_limit

    failed = synthetic_share(50, 200, (4, 200), (20, 200))
    assert over_limit(failed, 0.05) is True and over_limit(failed, 0.5) is False
    assert over_limit({"kind": "assumption_failed", "estimate": None}, 0.05) is None  # distributional: no figure
    assert combine_over_limit([True, None]) is True and combine_over_limit([False, None]) is None
    assert combine_over_limit([False, False]) is False


def test_flag_share_below_fpr_is_an_assumption_failure():
    s = synthetic_share(0, 2000, (100, 1000), (700, 1000))
    assert s["kind"] == "assumption_failed" and "below the calibrated FPR" in s["note"]


def test_flag_share_within_sampling_error_of_the_rates_still_estimates():
    assert synthetic_share(22, 200, (4, 200), (20, 200))["kind"] == "rogan_gladen"  # 11% vs TPR 10%
    s = synthetic_share(3, 200, (4, 200), (150, 200))  # 1.5% vs FPR 2%: consistent with no machine text
    assert s["kind"] == "rogan_gladen" and s["low"] == 0.0 and s["high"] > 0.0


# --- the [prevalence] table ---------------------------------------------------------------------

BASE = '[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\noptions = { ledger = "gens.ledger" }\n'


@pytest.mark.parametrize("table, message", [
    ('method = "mle"', "method must be one of rogan_gladen, distributional, both, got 'mle'"),
    ('method = "both"', "needs human_reference and machine_reference"),
    ('method = "distributional"\nhuman_reference = "h.jsonl"', "needs human_reference and machine_reference"),
    ('human_reference = 3', "human_reference must be a path or a list of paths"),
    ('unit = "paragraph"', "unit must be one of sentence, document"),
    ('draws = 5', "draws must be an integer >= 100"),
    ('min_units = 0', "min_units must be an integer >= 1"),
    ('calibrate = "yes"', "calibrate must be true or false"),
    ('max_mismatch = -1', "max_mismatch must be a positive number"),
    ('methd = "both"', "unknown key(s) methd"),
])
def test_bad_prevalence_tables_are_refused_in_one_line(tmp_path, table, message):
    path = tmp_path / "collapseguard.toml"
    path.write_text(f"[prevalence]\n{table}\n{BASE}")
    with pytest.raises(CollapseguardError) as err:
        load_policy(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(path) in str(err.value) and "[prevalence]" in str(err.value)


def test_prevalence_table_defaults_and_paths(tmp_path):
    path = tmp_path / "collapseguard.toml"
    path.write_text(BASE)
    assert load_policy(path).prevalence.method == "rogan_gladen"
    path.write_text('[prevalence]\nmethod = "both"\nhuman_reference = "h.jsonl"\n'
                    'machine_reference = ["m1.jsonl", "m2.parquet"]\n' + BASE)
    spec = load_policy(path).prevalence
    assert spec.human_reference == ["h.jsonl"] and spec.machine_reference == ["m1.jsonl", "m2.parquet"]
    assert spec.distributional and spec.rogan_gladen and spec.unit == "sentence"


# --- scan with both estimators, and filter --keep ------------------------------------------------

def sentences(p: np.ndarray, n_docs: int, rng, per_doc: int = 4) -> list[str]:
    return [". ".join(documents(p, per_doc, rng)) + "." for _ in range(n_docs)]


def run(*args, code=0):
    from collapseguard.cli.main import cli

    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, (res.output, repr(res.exception))
    return res


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A minhash-only policy over a ledger, calibrated, with both estimators; a corpus of 150
    human and 50 machine documents (10 of them ledger entries pasted in), plus 3 null records."""
    pytest.importorskip("datasketch")
    from collapseguard.detectors.dedup.ledger import Ledger

    root = tmp_path_factory.mktemp("prev")
    rng = np.random.default_rng(5)
    entries = sentences(P_MACHINE, 30, rng, per_doc=8)
    Ledger.create(root / "gens.ledger").add(entries, [f"g{i}" for i in range(len(entries))])

    def jsonl(path, texts):
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))

    jsonl(root / "human_ref.jsonl", sentences(P_HUMAN, 400, rng))
    jsonl(root / "machine_ref.jsonl", sentences(P_MACHINE, 400, rng))
    jsonl(root / "cal_human.jsonl", sentences(P_HUMAN, 200, rng))
    jsonl(root / "cal_machine.jsonl", entries[:20])
    texts = sentences(P_HUMAN, 150, rng) + sentences(P_MACHINE, 40, rng) + entries[20:30]
    (root / "data").mkdir()
    with open(root / "data" / "shard.jsonl", "w") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
        f.writelines('{"text": null}\n' for _ in range(3))
    (root / "collapseguard.toml").write_text(
        'calibration = "cal.json"\nmax_synthetic_share = 0.05\n'
        '[prevalence]\nmethod = "both"\nhuman_reference = "human_ref.jsonl"\nmachine_reference = "machine_ref.jsonl"\n'
        'unit = "sentence"\ndraws = 300\n' + BASE)
    run("policy", "calibrate", "--policy", root / "collapseguard.toml", "--human", root / "cal_human.jsonl",
        "--machine", root / "cal_machine.jsonl", "--fpr", "0.05", "--out", root / "cal.json")
    res = run("scan", root / "data", "--out", root / "scan", "--policy", root / "collapseguard.toml")
    return root, res.output


def test_scan_reports_both_estimators_and_says_which_is_which(guarded):
    root, output = guarded
    summary = json.loads((root / "scan" / "summary.json").read_text())
    assert summary["prevalence_method"] == "both"
    assert summary["synthetic_share"]["kind"] in ("rogan_gladen", "assumption_failed", "lower_bound")
    d = summary["distributional_share"]
    assert d["kind"] == "distributional" and d["unit"] == "sentence" and d["documents"] == 200
    machine_sentences = 40 * 4 + 10 * 8
    truth = machine_sentences / (150 * 4 + machine_sentences)
    assert d["low"] <= truth <= d["high"]
    md = (root / "scan" / "summary.md").read_text()
    assert "Rogan-Gladen, from the flag share" in md and "distributional, from word use" in md
    assert "synthetic share (Rogan-Gladen, from flags)" in output and "synthetic share (distributional" in output
    assert summary["over_limit"] is True  # both figures are far above 5%


def test_scan_refuses_a_missing_reference_before_writing(guarded, tmp_path):
    root, _ = guarded
    policy = root / "missing_reference.toml"
    policy.write_text((root / "collapseguard.toml").read_text().replace('"human_ref.jsonl"', '"nope.jsonl"'))
    res = run("scan", root / "data", "--out", tmp_path / "scan", "--policy", policy, code=2)
    assert "human_reference 'nope.jsonl': no such file" in res.output
    assert not (tmp_path / "scan").exists()


def test_filter_sets_abstentions_aside_unless_kept(guarded):
    root, _ = guarded
    res = run("filter", root / "data", "--attributes", root / "scan", "--out", root / "clean", "--json")
    counts = json.loads(res.output)
    decisions = [json.loads(line)["collapseguard_decision"] for folder in ("kept", "rejected", "abstained")
                 for line in (root / "clean" / folder / "shard.jsonl").read_text().splitlines()]
    import pyarrow.parquet as pq

    scanned = pq.read_table(root / "scan" / "attributes" / "shard.jsonl.parquet").column("decision").to_pylist()
    n_abstain = scanned.count("abstain")  # the 3 null records, and any outside the calibrated slices
    assert n_abstain >= 3 and counts["abstained"] == n_abstain and counts["abstain_kept"] == 0
    assert counts["kept"] + counts["rejected"] + counts["abstained"] == 203 == len(decisions)
    kept = [json.loads(line) for line in (root / "clean" / "kept" / "shard.jsonl").read_text().splitlines()]
    assert {r["collapseguard_decision"] for r in kept} == {"human"}
    rejected = (root / "clean" / "rejected" / "shard.jsonl").read_text().splitlines()
    assert {json.loads(line)["collapseguard_decision"] for line in rejected} == {"synthetic"}
    aside = [json.loads(line) for line in (root / "clean" / "abstained" / "shard.jsonl").read_text().splitlines()]
    assert [r["collapseguard_reason"] for r in aside].count("empty (null)") == 3
    assert {r["collapseguard_decision"] for r in aside} == {"abstain"}

    res = run("filter", root / "data", "--attributes", root / "scan", "--out", root / "clean2", "--keep", "human+abstain")
    assert f"{n_abstain} of them abstained on" in res.output
    kept2 = (root / "clean2" / "kept" / "shard.jsonl").read_text().splitlines()
    assert len(kept2) == counts["kept"] + n_abstain and not (root / "clean2" / "abstained").exists()


def test_a_limit_no_estimate_can_meet_fails_the_hook_instead_of_passing():
    from types import SimpleNamespace

    from collapseguard.hooks.checks import limit_findings
    from collapseguard.scan.summary import unproven_within

    shard = {"shard": "data/a.jsonl", "records": 10, "synthetic": 0, "human": 10, "abstain": 0}
    summary = {"max_synthetic_share": 0.2, "records": 10, "over_limit": None, "synthetic_share": None,
               "shards": [shard]}
    assert unproven_within(summary)
    findings = limit_findings(summary, SimpleNamespace(calibration_path=None))
    assert len(findings) == 1 and "cannot be shown within the policy's limit 0.2" in findings[0].message
    assert not unproven_within({**summary, "over_limit": False})
    assert not unproven_within({**summary, "records": 0})
    assert not unproven_within({**summary, "max_synthetic_share": None})
