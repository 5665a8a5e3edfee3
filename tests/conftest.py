import os

from hypothesis import settings

os.environ.setdefault("MPLBACKEND", "Agg")

# Property tests draw the same examples on every run ("ci", the default), so that a CI result
# depends on the code alone; HYPOTHESIS_PROFILE=explore draws fresh ones and keeps a database
# of failures, for hunting bugs locally.
settings.register_profile("ci", derandomize=True, database=None, deadline=None)  # no timing in a verdict
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
