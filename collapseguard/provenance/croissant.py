"""Croissant 1.0 JSON-LD (https://docs.mlcommons.org/croissant/docs/croissant-spec.html) from a manifest:
one `cr:FileObject` per subject with its sha256 and size, the Responsible-AI `rai:hasSyntheticData`
and `rai:dataCollection` fields, and the collapseguard predicate (record and origin counts, synthetic
share, policy fingerprint, parents) under the `cg:` namespace.
"""

from __future__ import annotations

import json

from collapseguard.provenance.manifest import PREDICATE_TYPE

CROISSANT = "http://mlcommons.org/croissant/1.0"
ENCODINGS = {".parquet": "application/x-parquet", ".jsonl": "application/jsonlines",
             ".ndjson": "application/jsonlines", ".txt": "text/plain", ".gz": "application/gzip",
             ".zst": "application/zstd", ".arrow": "application/vnd.apache.arrow.file", ".json": "application/json"}

CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet", "format": "cr:format",
    "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "sc": "https://schema.org/", "separator": "cr:separator",
    "source": "cr:source", "subField": "cr:subField", "transform": "cr:transform",
    "cg": PREDICATE_TYPE + "#",
}


def encoding_of(name: str) -> str:
    """The MIME type Croissant expects for a file, from its last suffix."""
    for suffix, mime in ENCODINGS.items():
        if name.lower().endswith(suffix):
            return mime
    return "application/octet-stream"


def file_object(subject: dict, entry: dict, base_url: str | None) -> dict:
    from collapseguard.provenance.verify import check_subject_name

    name = subject["name"]
    check_subject_name(name)  # never a contentUrl out of the dataset (absolute, `..`)
    obj = {"@type": "cr:FileObject", "@id": name, "name": name,
           "contentUrl": f"{base_url.rstrip('/')}/{name}" if base_url else name,
           "encodingFormat": encoding_of(name), "sha256": subject["digest"]["sha256"]}
    if entry.get("size") is not None:
        obj["contentSize"] = f"{entry['size']} B"
    if entry.get("records") is not None:
        obj["cg:records"] = entry["records"]
    for key in ("origin_counts", "detected_counts"):
        if entry.get(key):
            obj[f"cg:{key}"] = json.dumps(entry[key], sort_keys=True)
    return obj


def record_set(name: str, entry: dict, text_column: str) -> dict | None:
    """A RecordSet reading the text (and the declared `origin`) of a parquet or jsonl file, so
    Croissant loaders can read the records; None for other formats."""
    if encoding_of(name) not in ("application/x-parquet", "application/jsonlines"):
        return None
    columns = [text_column] + (["origin"] if entry.get("origin_counts") else [])
    fields = [{"@type": "cr:Field", "@id": f"{name}/records/{col}", "name": col, "dataType": "sc:Text",
               "source": {"fileObject": {"@id": name}, "extract": {"column": col}}} for col in columns]
    return {"@type": "cr:RecordSet", "@id": f"{name}/records", "name": f"{name}/records", "field": fields}


def has_synthetic(pred: dict) -> bool | None:
    """Whether the data holds machine text: declared origins first, then the scan's detections."""
    declared = pred.get("origin_counts")
    if declared:
        return declared.get("synthetic", 0) > 0
    share = pred.get("synthetic_share") or {}
    low = share.get("low")
    return None if low is None else low > 0


def to_croissant(statement: dict, *, name: str, description: str | None = None, url: str | None = None,
                 license: str | None = None, base_url: str | None = None, version: str | None = None,
                 cite_as: str | None = None, date_published: str | None = None,
                 text_column: str | None = None) -> dict:
    """A Croissant JSON-LD dataset describing the manifest's files and their provenance, with a
    record set per parquet/jsonl file (`text_column`: default the policy's, else "text")."""
    pred = statement["predicate"]
    entries = pred.get("files") or {}
    policy = pred.get("policy") or {}
    share = pred.get("synthetic_share")
    collection = (f"Files checked by collapseguard {pred.get('tool_version')}; "
                  f"{pred.get('records')} records; origin counts {json.dumps(pred.get('origin_counts'))}; "
                  f"synthetic share {json.dumps(share)}.")
    doc = {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": CROISSANT, "name": name,
        "description": description or f"{name}: files and provenance from a collapseguard manifest.",
        "distribution": [file_object(s, entries.get(s["name"], {}), base_url) for s in statement["subject"]],
        "rai:dataCollection": collection,
        "cg:records": pred.get("records"),
        "cg:tool_version": pred.get("tool_version"),
    }
    column = text_column or policy.get("text_column") or "text"
    sets = [record_set(s["name"], entries.get(s["name"], {}), column) for s in statement["subject"]]
    if any(sets):
        doc["recordSet"] = [r for r in sets if r]
    for key, value in (("url", url), ("license", license), ("version", version), ("citeAs", cite_as),
                       ("datePublished", date_published)):
        if value:
            doc[key] = value
    synthetic = has_synthetic(pred)
    if synthetic is not None:
        doc["rai:hasSyntheticData"] = synthetic
    if share:
        doc["cg:synthetic_share"] = json.dumps(share, sort_keys=True)
    if policy.get("fingerprint"):
        doc["cg:policy_fingerprint"] = policy["fingerprint"]
    if (policy.get("calibration") or {}).get("sha256"):
        doc["cg:calibration_sha256"] = policy["calibration"]["sha256"]
    if pred.get("parents"):
        doc["cg:parents"] = [f"{p['path']}#sha256={p['sha256']}" for p in pred["parents"]]
    return doc
