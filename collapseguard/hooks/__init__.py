"""The pre-commit and CI hooks over dataset repositories: trust anchors read from the base revision
(`anchors`) and the verify and scan checks (`checks`); above `scan` and `provenance`."""
