"""GPU microbenchmarks that write the canonical profile schema (``frontier-calib profile``).

One job per module:

* :mod:`.plan`      shapes to measure, derived from model specs and parallel degrees
* :mod:`.grid`      log-spaced token / length / size grids
* :mod:`.estimate`  work per shape (FLOPs, bytes, memory) and roofline time estimates
* :mod:`.timing`    warm-up, CUDA events / perf_counter, repeats, median, L2 flush
* :mod:`.kernels_gemm`, :mod:`.kernels_attention`, :mod:`.kernels_moe`, :mod:`.kernels_comm`
                    one ``prepare(shape, ctx) -> Bench`` per family (fast kernels or torch references)
* :mod:`.routing`   seeded MoE routing (balanced, power-law)
* :mod:`.journal`   resume journal and atomic table writes
* :mod:`.runner`    runs a plan: measure, journal, tables, metadata
* :mod:`.environment` torch import, device and GPU detection, run metadata
* :mod:`.commands`  the ``profile`` click command

Nothing here imports torch at module import time: plans and dry runs work without it.
"""
