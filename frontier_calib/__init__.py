"""frontier-calib: predict LLM serving behaviour from GPU kernel profiles.

Data flows one way: profile tables -> operator models -> cost model -> replay engine
-> per-request results -> validation report. See README.md and the package folders.
"""

import os as _os

# XGBoost's OpenMP threads spin while waiting; on a busy 2-core machine that made fits 3x slower.
# Must be set before xgboost is first imported; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
