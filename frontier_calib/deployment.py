"""Deployments as YAML files people can read: the public entry points (parse, validate, build simulator replicas,
replay). The modes and their fields live in :mod:`frontier_calib.modes` (one module per mode, one registry);
docs/deployments.md describes every field.
"""

from .modes import (AFDeployment, Deployment, PDDeployment, build_replicas, cost_summary, deployment_from_dict,
                    load_deployment, pd_config, simulate_deployment)

__all__ = ["AFDeployment", "Deployment", "PDDeployment", "build_replicas", "cost_summary", "deployment_from_dict",
           "load_deployment", "pd_config", "simulate_deployment"]
