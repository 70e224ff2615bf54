"""The report's Gen-0 perplexity tail table, on perplexities whose quantiles are known."""

import numpy as np

from collapseguard.simulate.lm.report import tail_table


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def test_tail_table_shares_above_generation_zero():
    gen0 = np.arange(1.0, 101.0)  # p99 = 99.01, max = 100
    later = np.r_[np.full(90, 10.0), np.full(6, 99.5), np.full(4, 500.0)]
    lines = tail_table({0: gen0, 1: later})
    assert len(lines) == 4
    g0, g1 = _cells(lines[2]), _cells(lines[3])
    assert g0[0] == "0" and float(g0[2]) == np.median(gen0) and float(g0[5]) == 100
    assert float(g0[6]) == 0.01 and float(g0[7]) == 0  # one gen-0 sample (100) lies above its own p99
    assert float(g1[2]) == 10 and float(g1[5]) == 500
    assert float(g1[6]) == 0.10 and float(g1[7]) == 0.04  # 6 + 4 above 99.01; 4 above 100


def test_tail_table_needs_generation_zero():
    assert tail_table({1: np.ones(5)}) == []
