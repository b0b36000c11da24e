"""Deployment modes: one module per mode, each registering one :class:`DeploymentMode` (how its YAML is parsed and
how its simulator replicas are built), on shared field parsers (``fields.py``) and build helpers (``build.py``).

Built in: ``colocated`` (the default), ``pd`` (prefill/decode disaggregation), ``af`` (attention/FFN
disaggregation). A deployment object's ``mode`` attribute names its record (:func:`get_mode`). See
``docs/deployments.md`` for the YAML and ``docs/extending.md`` for adding a mode.
"""

from .base import (DEFAULT_MODE, MODES, DeploymentMode, build_replicas, cost_summary, deployment_from_dict,
                   get_mode, load_deployment, register_mode, simulate_deployment)
from .colocated import Deployment  # noqa: E402  (registers the built-in modes, in this order)
from .pd import PDDeployment, pd_config  # noqa: E402
from .af import AFDeployment  # noqa: E402

__all__ = ["DEFAULT_MODE", "MODES", "DeploymentMode", "build_replicas", "cost_summary", "deployment_from_dict",
           "get_mode", "load_deployment", "register_mode", "simulate_deployment", "Deployment", "PDDeployment",
           "AFDeployment", "pd_config"]
