"""Request traces: the canonical request table, readers for real trace formats, synthetic generators.

    from frontier_calib.traces import load_trace, write_trace, synthetic_trace, poisson, lognormal
    trace = load_trace("../shared/traces/mooncake_conversation_trace.jsonl", limit=1000)
    synth = synthetic_trace(1000, arrival=poisson(5.0), input_len=lognormal(1000, 0.5), output_len=200, seed=0)
"""

from .arrivals import ArrivalProcess, constant, gamma, poisson
from .detect import FORMATS, detect_format
from .generators import closed_loop, shared_prefix_trace, synthetic_trace
from .lengths import LengthDistribution, empirical, fixed, lognormal, uniform
from .loader import load_trace
from .native import write_trace
from .schema import COLUMNS, REQUIRED_COLUMNS, Trace, canonical_trace, validate_trace
from .spec import load_spec, trace_from_spec

__all__ = [
    "Trace", "COLUMNS", "REQUIRED_COLUMNS", "canonical_trace", "validate_trace",
    "FORMATS", "detect_format", "load_trace", "write_trace",
    "ArrivalProcess", "constant", "poisson", "gamma",
    "LengthDistribution", "fixed", "uniform", "lognormal", "empirical",
    "synthetic_trace", "shared_prefix_trace", "closed_loop",
    "load_spec", "trace_from_spec",
]
