"""Fidelity validation: measured benchmarks replayed, errors reported, engine constants calibrated.

``silicon`` (benchmark rows -> scenarios), ``runner`` (process pool), ``metrics``, ``report``, ``trace``
(measured per-request traces), ``calibrate``, ``commands`` (CLI). See docs/validation.md.
"""
