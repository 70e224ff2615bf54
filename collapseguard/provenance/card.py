"""The YAML metadata block of a Hugging Face dataset card (README.md front matter) from a manifest.

Standard keys (`license`, `pretty_name`, `size_categories`, `tags`, `configs` with data files)
plus a `collapseguard` block with the provenance: record and origin counts, the synthetic share
with its interval, the policy fingerprint, the calibration hash, parents and the file digests.
Written without a YAML library: every scalar is a JSON scalar, which YAML reads unchanged.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

# https://huggingface.co/docs/hub/datasets-cards: the size_categories buckets
SIZE_BUCKETS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T")]


def size_category(records: int) -> str:
    for bound, label in SIZE_BUCKETS:
        if records < bound:
            return label
    return "n>1T"


def card_metadata(statement: dict, *, pretty_name: str | None = None, license: str | None = None) -> dict:
    """The card's metadata as a plain dict."""
    from collapseguard.provenance.verify import check_subject_name

    pred = statement["predicate"]
    names = [check_subject_name(s["name"]).as_posix() for s in statement["subject"]]  # never a path out of the dataset
    meta = {}
    if license:
        meta["license"] = license
    if pretty_name:
        meta["pretty_name"] = pretty_name
    meta["size_categories"] = [size_category(int(pred.get("records") or 0))]
    meta["tags"] = ["collapseguard", "provenance"]
    suffixes = {"".join(PurePosixPath(n).suffixes) for n in names}
    if len(suffixes) == 1:  # the Hub's loader reads one format per config
        meta["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": names}]}]
    policy = pred.get("policy") or {}
    meta["collapseguard"] = {
        "predicate_type": statement["predicateType"],
        "tool_version": pred.get("tool_version"),
        "records": pred.get("records"),
        "origin_counts": pred.get("origin_counts"),
        "synthetic_share": pred.get("synthetic_share"),
        "policy_fingerprint": policy.get("fingerprint"),
        "calibration_sha256": (policy.get("calibration") or {}).get("sha256"),
        "max_synthetic_share": policy.get("max_synthetic_share"),
        "parents": pred.get("parents") or [],
        "files": [{"path": s["name"], "sha256": s["digest"]["sha256"],
                   "records": (pred.get("files") or {}).get(s["name"], {}).get("records")} for s in statement["subject"]],
    }
    return meta


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and JSON scalars."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = []
        for k, v in value.items():
            key = json.dumps(str(k)) if not str(k).replace("_", "").isalnum() else str(k)
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {to_yaml(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        lines = []
        for v in value:
            if isinstance(v, (dict, list)) and v:
                body = to_yaml(v, indent + 2)
                lines.append(f"{pad}- {body[indent + 2:]}")
            else:
                lines.append(f"{pad}- {to_yaml(v)}")
        return "\n".join(lines)
    return json.dumps(value)


def card_block(statement: dict, **kwargs) -> str:
    """The `---`-fenced YAML block to put at the top of the dataset's README.md."""
    return "---\n" + to_yaml(card_metadata(statement, **kwargs)) + "\n---\n"
