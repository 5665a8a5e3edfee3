import os

os.environ.setdefault("MPLBACKEND", "Agg")

try:  # the test extra installs it; a device image that runs only tests/test_cuda.py (no property tests) may lack it
    from hypothesis import settings
except ImportError:
    settings = None

# Property tests draw the same examples on every run ("ci", the default), so that a CI result
# depends on the code alone; HYPOTHESIS_PROFILE=explore draws fresh ones and keeps a database
# of failures, for hunting bugs locally.
if settings is not None:
    settings.register_profile("ci", derandomize=True, database=None, deadline=None)  # no timing in a verdict
    settings.register_profile("explore", derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
