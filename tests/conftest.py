"""Property tests draw the same cases on every run (CI reproducible); for a random, deeper search:
HYPOTHESIS_PROFILE=explore COLLAPSEGUARD_FUZZ_EXAMPLES=2000 python -m pytest tests/test_bad_input_fuzz.py"""

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
