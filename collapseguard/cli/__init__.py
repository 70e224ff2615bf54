"""Command-line interface; each command fills a config object and makes one library call."""
