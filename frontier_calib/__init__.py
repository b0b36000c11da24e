"""frontier-calib: predict LLM serving behaviour from GPU kernel profiles.

Data flows one way: profile tables -> operator models -> cost model -> replay engine
-> per-request results -> validation report. See README.md and the package folders.
"""

__version__ = "0.1.0"
