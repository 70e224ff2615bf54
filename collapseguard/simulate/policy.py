"""Mixing policies: how each generation's training data is assembled.

The seed paper's mixture p_{i+1} = a p_model + b p_prev + c p_orig sets the shares of each
generation's fresh data; the workflow says what happens to older data (Gerstgrasser et al.
2024 "replace" vs "accumulate"; Kazdan et al. 2024 "accumulate-subsample"); the schedule
grows the per-generation sample size; an imperfect filter sits between sampling and mixing.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapseguard.errors import CollapseguardError, check_choice

WORKFLOWS = ("replace", "accumulate", "subsample")
SCHEDULES = ("constant", "linear", "quadratic")


def _unit(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise CollapseguardError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class Policy:
    """How generation i+1's training data is built from generation i's.

    Fractions apply to each generation's fresh data: ``model_fraction`` (a) is sampled from
    the current model, ``prev_fraction`` (b) drawn from the previous generation's training
    data, ``human_fraction`` (c) drawn fresh from the truth. a defaults to 1 - b - c.
    ``workflow``: ``replace`` trains on the fresh data only; ``accumulate`` on all data so far;
    ``subsample`` draws the generation's budget uniformly from all data so far.
    ``schedule``: per-generation sample size M_i = M (constant), M (i+1) or M (i+1)^2.
    ``filter_tpr``/``filter_fpr``: a detector between sampling and mixing removes that share
    of the synthetic and of the human candidates; the pipeline draws until the generation's
    budget is filled, so the filter changes the mix, not the size.
    """

    workflow: str = "replace"
    human_fraction: float = 0.0
    prev_fraction: float = 0.0
    model_fraction: float | None = None
    schedule: str = "constant"
    filter_tpr: float = 0.0
    filter_fpr: float = 0.0

    def __post_init__(self):
        check_choice("workflow (policy)", self.workflow, WORKFLOWS)
        check_choice("schedule", self.schedule, SCHEDULES)
        c = _unit("--human-fraction", self.human_fraction)
        b = _unit("--prev-fraction", self.prev_fraction)
        _unit("--filter-tpr", self.filter_tpr)
        _unit("--filter-fpr", self.filter_fpr)
        if self.model_fraction is None:
            if b + c > 1 + 1e-9:
                raise CollapseguardError(
                    f"--prev-fraction {b} plus --human-fraction {c} exceed 1; lower one of them"
                )
            object.__setattr__(self, "model_fraction", max(0.0, 1.0 - b - c))
        elif abs(_unit("--model-fraction", self.model_fraction) + b + c - 1) > 1e-9:
            raise CollapseguardError(
                f"fractions must sum to 1: model {self.model_fraction} + prev {b} + human {c} "
                f"= {self.model_fraction + b + c:g}; fix one, or drop --model-fraction to derive it"
            )

    @property
    def subsamples(self) -> bool:
        """Whether the loop must draw subsets of earlier data (not every world's data allow it)."""
        return self.workflow == "subsample" or self.prev_fraction > 0

    def size(self, samples: int, generation: int) -> int:
        """The sample size M_i of `generation` under the schedule."""
        power = SCHEDULES.index(self.schedule)
        return samples * (generation + 1) ** power

    def split(self, m: int) -> tuple[int, int, int]:
        """(model, previous, human) counts of m fresh samples that pass the filter (0s if none can)."""
        kept_model = self.model_fraction * (1 - self.filter_tpr)
        kept_human = self.human_fraction * (1 - self.filter_fpr)
        total = kept_model + kept_human + self.prev_fraction
        if total <= 0:
            return 0, 0, 0
        n_human = round(m * kept_human / total)
        n_prev = round(m * self.prev_fraction / total)
        return max(0, m - n_human - n_prev), n_prev, n_human
