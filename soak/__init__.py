"""The soak test: `make soak` (see soak/__main__.py and the README's "Soak test")."""

# The failure the Locust clients record when an idempotent replay answers another
# generation than the first call did; the checks count it.
REPLAY_FAILED = "idempotency: replay answered another generation"

# The page that reads nothing, whose response times under the same load are the baseline
# of the budget for all the others.
BASELINE = "/pricing/ (baseline)"
