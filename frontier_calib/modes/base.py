"""The deployment-mode record and its registry: how a ``mode:`` of a deployment YAML is parsed and built.

A deployment mode is one :class:`DeploymentMode` in one module of this package (``colocated.py``, ``pd.py``,
``af.py``). A deployment mapping names its mode in ``mode:`` (default ``colocated``); the parsed deployment
object carries the same name in its ``mode`` attribute, and that attribute is the one way the rest of the
code tells deployment kinds apart (:func:`get_mode`). ``docs/extending.md`` walks through adding one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FrontierError, InputError

#: the mode of a deployment mapping without a ``mode:`` key
DEFAULT_MODE = "colocated"


@dataclass(frozen=True)
class DeploymentMode:
    """One deployment mode.

    ``name``: what ``mode:`` says and what the parsed deployment's ``mode`` attribute holds.
    ``parse(raw, source=..., base_dir=...)``: the validated deployment object of a mapping (InputErrors name
    ``source`` and the field). ``build(dep, progress=...)``: ``(replica specs, cost model)`` of the simulator
    replicas that replay it. ``summary(cost)``: extra entries of the replay summary from the cost model that
    ``build`` returned (None: nothing extra). ``deployment``: the class ``parse`` returns.
    """

    name: str
    description: str
    parse: Callable
    build: Callable
    deployment: type
    summary: Callable | None = None

    def __post_init__(self):
        if getattr(self.deployment, "mode", None) != self.name:
            raise FrontierError(f"deployment mode {self.name!r}: {self.deployment.__name__}.mode must be "
                                f"{self.name!r}, got {getattr(self.deployment, 'mode', None)!r}")


#: the registered modes by name (built-ins: colocated, pd, af); add one with :func:`register_mode`
MODES: dict[str, DeploymentMode] = {}


def register_mode(record: DeploymentMode) -> DeploymentMode:
    """Add ``record`` to the registry (names are unique)."""
    if not isinstance(record, DeploymentMode):
        raise FrontierError(f"register_mode takes a DeploymentMode, got {type(record).__name__}")
    if record.name in MODES:
        raise FrontierError(f"deployment mode {record.name!r} is already registered")
    MODES[record.name] = record
    return record


def get_mode(name: str) -> DeploymentMode:
    """The record of mode ``name``; FrontierError listing the registered modes."""
    rec = MODES.get(name)
    if rec is None:
        raise FrontierError(f"unknown deployment mode '{name}'; known: {', '.join(sorted(MODES))}")
    return rec


def deployment_from_dict(raw: dict, *, source: str = "<dict>", base_dir: Path | None = None):
    """A validated deployment from a mapping, parsed by the mode its ``mode:`` key names (default colocated)."""
    mode = raw.get("mode", DEFAULT_MODE)
    rec = MODES.get(mode) if isinstance(mode, str) else None
    if rec is None:
        raise InputError(f"mode '{mode}' is not supported", path=source, field="mode",
                         fix=f"use one of {sorted(MODES)}")
    return rec.parse(raw, source=source, base_dir=base_dir)


def load_deployment(path: str | Path):
    """Read and validate a deployment YAML file."""
    from ..io import read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, what="deployment")
    return deployment_from_dict(raw, source=str(path), base_dir=path.parent)


def build_replicas(dep, *, progress: bool = False):
    """``(replica specs, cost model)`` that replay ``dep``: its mode's ``build``."""
    return get_mode(dep.mode).build(dep, progress=progress)


def cost_summary(dep, cost) -> dict:
    """Extra replay-summary entries of ``dep``'s mode from the cost model :func:`build_replicas` returned
    (AF: per-pool utilisation and pipeline bubbles)."""
    rec = get_mode(dep.mode)
    return rec.summary(cost) if rec.summary is not None else {}


def simulate_deployment(dep, trace, replicas, *, seed: int = 0, progress: bool = False, timeline: bool = False):
    """Replay ``trace`` through ``replicas`` (from :func:`build_replicas` of ``dep``) the way ``dep`` routes
    requests, with its front-end latency (``overheads.frontend_s``) and, for PD, its TTFT convention.
    Returns the :class:`~frontier_calib.sim.results.SimResult`."""
    from ..sim import simulate

    return simulate(trace, replicas, router=dep.router, seed=seed, progress=progress, timeline=timeline,
                    ttft=getattr(dep, "ttft", "decode"), frontend_s=dep.entry_overheads.frontend_s,
                    frontend_per_token_s=dep.entry_overheads.frontend_per_token_s)
