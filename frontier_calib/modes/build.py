"""Building blocks every deployment mode's ``build`` shares: cost tables sized to a scheduler, speculative
decoding over a cost model, and one simulator replica per attention-DP rank."""

from __future__ import annotations

from ..engines import token_budget


def table_limits(sched, speculative) -> tuple[int, int]:
    """(tokens, sequences) of one iteration that the cost tables of a worker scheduled by ``sched`` must cover
    (with speculative decoding: the verify rows, :func:`~frontier_calib.cost.speculative.speculative_limits`)."""
    from ..cost.speculative import speculative_limits

    return speculative_limits(speculative, token_budget(sched), max(sched.max_num_seqs, sched.max_batch_size or 0))


def cost_model(worker, sched, speculative, profiles, progress: bool):
    """The cost model (cached tables) of ``worker`` scheduled by ``sched``; ``profiles``: the deployment's profile
    folder or None."""
    from ..cost.cache import cost_model_for

    max_tokens, max_seqs = table_limits(sched, speculative)
    return cost_model_for(worker, max_tokens=max_tokens, max_seqs=max_seqs, max_model_len=sched.max_model_len,
                          profiles_root=profiles, progress=progress)


def speculative_cost(cost, spec, model, draft=None):
    """``cost`` with speculative verify steps and drafts (cost/speculative.py), or ``cost`` when ``spec`` is None.
    ``draft``: the cost model whose per-layer kernel times price the drafter (default ``cost``)."""
    if spec is None:
        return cost
    from ..cost.speculative import SpeculativeCost

    return SpeculativeCost(cost, spec, model.num_layers, draft=draft)


def rank_replica_specs(workers: int, attention_dp: int, scheduler, cost, prefix: str, *, role: str = "both",
                       kv_transfer=None, speculative=None) -> list:
    """One ``ReplicaSpec`` per attention-DP rank of each of ``workers`` workers, named ``<prefix><worker>`` or
    ``<prefix><worker>.dp<rank>``. Each rank schedules on its own, but the ranks of one worker step in lockstep
    (their MoE/MLP layers are collectives over all ranks; :mod:`frontier_calib.sim.lockstep`).
    ``kv_transfer``: a function name -> KVTransferSpec (prefill pools); ``speculative``: the ranks'
    SpeculativeSpec (cost/speculative.py) or None."""
    from ..sim.replica import ReplicaSpec

    specs = []
    for i in range(workers):
        for d in range(attention_dp):
            name = f"{prefix}{i}" if attention_dp == 1 else f"{prefix}{i}.dp{d}"
            specs.append(ReplicaSpec(scheduler=scheduler, cost=cost, role=role, name=name,
                                     kv_transfer=kv_transfer(name) if kv_transfer else None,
                                     lockstep=f"{prefix}{i}" if attention_dp > 1 else None,
                                     speculative=speculative))
    return specs
