"""A datatrove pipeline step that tags documents with a guard policy's scores and decision.

```python
from datatrove.executor import LocalPipelineExecutor
from collapseguard.scan.datatrove_step import GuardTagger
LocalPipelineExecutor(pipeline=[reader, GuardTagger("collapseguard.toml"), writer], tasks=4).run()
```

Each document gets `metadata[<detector>]` scores (None = abstained), `collapseguard_decision`
and `collapseguard_reason`; nothing is dropped (follow it with a filter to drop). The policy and
its detectors load once per task, on the first document.
"""

from __future__ import annotations

from datatrove.pipeline.base import PipelineStep


class GuardTagger(PipelineStep):
    """Tag each document with the policy's scores, decision and reason."""

    name = "collapseguard guard"
    type = "TAGGER"

    def __init__(self, policy: str, batch_size: int = 256):
        super().__init__()
        self.policy_file, self.batch_size = policy, batch_size
        self._policy = self._calibration = None

    def _load(self):
        if self._policy is None:
            from collapseguard.scan.calibrate import load_policy_calibration
            from collapseguard.scan.policy import load_policy

            self._policy = load_policy(self.policy_file)
            self._calibration = load_policy_calibration(self._policy)
        return self._policy, self._calibration

    def run(self, data, rank: int = 0, world_size: int = 1):
        from datatrove.utils.batching import batched

        from collapseguard.scan.policy import decide_records, screen_texts

        if data is None:
            return
        policy, cal = self._load()
        names = policy.column_names()
        for docs in batched(data, self.batch_size):
            texts, unreadable = screen_texts([d.text for d in docs], policy.max_chars)
            with self.track_time(unit="batch"):
                scores = policy.score_screened(texts, unreadable)
            decision, reason, _ = decide_records(scores, cal, texts, names, unreadable)
            for i, doc in enumerate(docs):
                for j, name in enumerate(names):
                    doc.metadata[name] = None if scores[i, j] != scores[i, j] else float(scores[i, j])
                doc.metadata["collapseguard_decision"] = decision[i]
                doc.metadata["collapseguard_reason"] = reason[i]
                self.stat_update(decision[i])
                yield doc
