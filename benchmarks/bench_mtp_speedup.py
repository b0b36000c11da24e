"""Where the predicted MTP speed-up of DeepSeek-V3 comes from (issue 14): the verify step, the drafter, the acceptance.

    python benchmarks/bench_mtp_speedup.py [--deployment deployments/deepseek-v3-h200-sglang-mtp.yaml]
                                           [--kv 1250] [--batches 1,4,8,16,32,64] [--acceptance 0.75,0.85,0.9]
                                           [--routing power_law_1.01 --routing balanced]

For each decode batch ``n`` (sequences, mean context ``--kv`` tokens) it prices, with the deployment's fitted cost
model (the same calls the replay makes):

* the plain decode step (``n`` tokens), and its kernels: token-proportional operators (GEMMs, MoE, all-reduces),
  LM head, attention;
* the verify step of ``k + 1 = 2`` tokens per sequence as the replay prices it (``SpeculativeCost``: the step of
  ``2n`` rows, attention as ``2n`` decode queries, each reading its sequence's KV: an upper bound), and the
  attention folded the way MLA kernels run it (FlashMLA packs the ``s_q x h_q`` query rows of a sequence into one
  pass over its KV: one decode query per sequence with ``2 x`` the heads, from the same fitted attention model);
* the drafter (one decoder layer's share of the token operators and attention, plus an LM head over ``n`` rows);
* the TPOT gain ``plain x accept length / (verify + draft)`` for each acceptance (accept length ``1 + a``), with
  the attention as priced and folded (the folded column swaps the attention kernel time only; the step's engine
  terms are the verify step's).

``--routing`` repeats the table for other expert-load assumptions (the deployment's ``routing`` key): with
tensor-parallel experts at small batches a step's time is mostly the reads of the experts its tokens activate,
so a second token per sequence costs what the experts it adds cost (the fitted MoE kernel tables), and how many
it adds depends on the routing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def load(path: Path, routing: str | None):
    import yaml

    from frontier_calib.modes.base import build_replicas, deployment_from_dict

    raw = yaml.safe_load(path.read_text())
    if routing:
        raw["routing"] = routing
    dep = deployment_from_dict(raw, source=str(path), base_dir=path.parent)
    _, cost = build_replicas(dep)
    return dep, cost


def attention_ms(cost, n: int, kv: float, rows: int) -> float:
    """Kernel ms of all attention layers for ``n`` sequences of ``kv`` keys that each verify ``rows`` query tokens
    in one pass over their KV (the kind's decode query with ``rows x`` the query heads)."""
    from frontier_calib.attention import QueryContext, attention_layers
    from frontier_calib.cost.cache import needed_families, needed_groups
    from frontier_calib.opmodel.registry import cached_model_set

    w = cost.base.worker
    models = cached_model_set(w.gpu, w.engine, families=needed_families(w), groups=needed_groups(w))
    total = 0.0
    for kind, window, layers in attention_layers(w.model):
        ctx = QueryContext(w, window, models)
        fam, df = kind.decode_query(ctx, np.array([n]), np.array([kv]))
        if "num_heads" not in df:
            raise SystemExit(f"attention kind {kind.name}: its decode query has no num_heads column to fold")
        df = df.assign(num_heads=df["num_heads"] * rows)
        ms = models.predict(fam, df) + kind.untimed_ms(ctx, "decode", np.array([n]), np.array([kv]))
        total += layers * float(np.asarray(ms)[0])
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deployment", type=Path, default=Path("deployments/deepseek-v3-h200-sglang-mtp.yaml"))
    ap.add_argument("--kv", type=float, default=1250.0, help="mean context per sequence (tokens)")
    ap.add_argument("--batches", default="1,4,8,16,32,64")
    ap.add_argument("--acceptance", default="0.75,0.85,0.9")
    ap.add_argument("--routing", action="append", default=None,
                    help="expert-load assumption(s) to compare (default: the deployment's)")
    args = ap.parse_args(argv)
    accs = [float(a) for a in args.acceptance.split(",")]
    for routing in args.routing or [None]:
        dep, cost = load(args.deployment, routing)
        spec, base = cost.speculative, cost.base
        if spec is None or spec.k != 1:
            raise SystemExit("the deployment needs a speculative section with num_draft_tokens: 1")
        print(f"\n{dep.describe()}\nrouting {dep.worker.routing}; {spec.describe()}; draft layers "
              f"{spec.draft_layers}; mean context {args.kv:.0f} tokens")
        print("   n | plain ms (tok / head / attn) | verify ms (tok / attn; attn folded) | draft ms | "
              + " | ".join(f"gain a={a:g} (folded)" for a in accs))
        for n in (int(b) for b in args.batches.split(",")):
            kv1 = np.array([n * args.kv])
            plain = float(base.decode_times(n, kv1)[0]) * 1e3
            t1, h1, a1 = base.decode_kernel_ms(n, kv1)
            verify = float(base.decode_times(2 * n, 2 * kv1)[0]) * 1e3
            t2, _, a2 = base.decode_kernel_ms(2 * n, 2 * kv1)
            folded = attention_ms(cost, n, args.kv, 2)
            draft = float(cost.draft_ms(n, kv1)[0])
            step = verify + draft
            step_folded = step - (float(a2[0]) - min(folded, float(a2[0])))
            gains = " | ".join(f"{plain * (1 + a) / step:.2f} ({plain * (1 + a) / step_folded:.2f})" for a in accs)
            print(f"{n:4d} | {plain:6.2f} ({t1:5.2f} / {h1:.3f} / {float(a1[0]):5.2f}) | {verify:6.2f} "
                  f"({t2:5.2f} / {float(a2[0]):5.2f}; {folded:5.2f}) | {draft:5.2f} | {gains}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
