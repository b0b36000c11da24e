"""Extension points (docs/extending.md): the import graph has no cycle, no module imports another's private names,
a toy engine registered through the public API replays a deployment YAML that names it, and the deployment-mode
registry is the one way deployment kinds are told apart. (The toy attention kind: tests/test_attention_kinds.py.)"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from frontier_calib.deployment import deployment_from_dict, load_deployment, simulate_deployment
from frontier_calib.engines import ENGINES, EngineRecord, engine_names, get_engine, register_engine
from frontier_calib.errors import FrontierError, InputError
from frontier_calib.modes import MODES, get_mode
from frontier_calib.modes.build import rank_replica_specs

PACKAGE = Path(__file__).resolve().parents[1] / "frontier_calib"
LLAMA_YAML = Path(__file__).resolve().parents[1] / "deployments" / "llama2-7b-h100-vllm.yaml"


# ------------------------------------------------------------------------------------------ import graph

def _modules() -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package __init__)."""
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """module -> the package modules it imports (``from X import name`` counts as X.name when that is a module).
    ``top_level_only``: only imports that run when the module is imported (not inside functions or classes)."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text())
        if top_level_only:
            nodes = [n for stmt in tree.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                       ast.ClassDef))
                     for n in ast.walk(stmt)]
        else:
            nodes = list(ast.walk(tree))
        here = m.split(".") if is_pkg else m.split(".")[:-1]
        for n in nodes:
            if isinstance(n, ast.Import):
                graph[m] |= {a.name for a in n.names if a.name in mods}
            elif isinstance(n, ast.ImportFrom):
                base = ".".join(here[:len(here) - n.level + 1] + ([n.module] if n.module else [])) if n.level \
                    else (n.module or "")
                for a in n.names:
                    sub = f"{base}.{a.name}"
                    if sub in mods:
                        graph[m].add(sub)
                    elif base in mods:
                        graph[m].add(base)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import): every import cycle."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_when_modules_load():
    """No cycle among the imports that run at import time, anywhere in the package."""
    assert cycles(import_graph(top_level_only=True)) == []


def test_no_import_cycle_even_through_function_local_imports():
    """Counting function-local imports too, no module of the package reaches itself again (the old
    deployment.py <-> deployment_pd.py / deployment_af.py, profiles.store <-> first_use and cache <->
    opmodel.registry cycles are gone)."""
    graph = import_graph(top_level_only=False)
    assert "frontier_calib.modes.pd" in graph and "frontier_calib.engines.vllm" in graph   # the walk found them
    assert cycles(graph) == []


def test_no_module_imports_another_modules_private_names():
    bad = []
    for m, (path, _) in _modules().items():
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom) and n.module != "__future__":
                bad += [f"{m}: {a.name}" for a in n.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert bad == []


# --------------------------------------------------------------------------------------------- toy engine

#: the toy's CPU per step (seconds): far above a Llama-2-7B decode step on an H100, so it shows in TPOT
TOY_STEP_S = 0.02


@pytest.fixture()
def toy_engine():
    """A copy of the vLLM record with different overheads, registered through the public API only."""
    vllm = get_engine("vllm")
    toy = register_engine(dataclasses.replace(vllm, name="toy", description="vLLM with a slow Python scheduler",
                                              overheads={**vllm.overheads, "step_s": TOY_STEP_S}))
    yield toy
    ENGINES.pop("toy")


def _yaml(tmp_path: Path, engine: str) -> Path:
    raw = yaml.safe_load(LLAMA_YAML.read_text())
    raw.update(engine=engine, calibration="none", name=f"llama-{engine}")   # the record's own defaults
    path = tmp_path / f"llama-{engine}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unregistered_engine_is_one_error_listing_the_known(tmp_path):
    with pytest.raises(InputError) as e:
        load_deployment(_yaml(tmp_path, "toy"))
    assert "unknown engine 'toy'" in str(e.value) and "vllm" in str(e.value) and "field 'engine'" in str(e.value)
    with pytest.raises(FrontierError, match="unknown engine 'toy'; known: sglang, trtllm, vllm"):
        get_engine("toy")


def test_every_place_that_takes_an_engine_name_refuses_an_unknown_one():
    from frontier_calib.cost.engine_time import engine_time
    from frontier_calib.cost.worker import Overheads, WorkerSpec
    from frontier_calib.model_spec import load_model
    from frontier_calib.names import check_engine
    from frontier_calib.sim.config import SchedulerConfig

    known = "known: sglang, trtllm, vllm"
    for call in (lambda: engine_time("nope"), lambda: Overheads.for_engine("nope"), lambda: check_engine("nope"),
                 lambda: WorkerSpec(model=load_model("Llama-2-7b"), gpu="h100_sxm", engine="nope")):
        with pytest.raises(FrontierError, match=f"unknown engine 'nope'; {known}"):
            call()
    with pytest.raises(FrontierError, match=r"unknown policy 'nope'; choose one of \('vllm', 'sglang', 'trtllm'\)"):
        SchedulerConfig(policy="nope")


def test_register_engine_checks_the_record():
    with pytest.raises(FrontierError, match="already registered"):
        register_engine(get_engine("vllm"))
    with pytest.raises(FrontierError, match="cache must be one of"):
        dataclasses.replace(get_engine("vllm"), name="x", cache="tree")
    with pytest.raises(FrontierError, match="missing \\['step_s'\\]"):
        dataclasses.replace(get_engine("vllm"), name="x",
                            overheads={k: v for k, v in get_engine("vllm").overheads.items() if k != "step_s"})
    assert engine_names()[:3] == ("vllm", "sglang", "trtllm") and isinstance(get_engine("sglang"), EngineRecord)


def test_toy_engine_replays_a_deployment_that_names_it(tmp_path, toy_engine, llama_replicas):
    from frontier_calib.cost.iteration import IterationCostModel
    from frontier_calib.sim.testing import poisson_trace

    dep = load_deployment(_yaml(tmp_path, "toy"))
    ref = load_deployment(_yaml(tmp_path, "vllm"))
    assert dep.worker.engine == dep.scheduler.policy == "toy" and "toy" in engine_names()
    assert dep.worker.overheads.step_s == TOY_STEP_S and ref.worker.overheads.step_s == get_engine("vllm").overheads[
        "step_s"]
    assert dep.scheduler.num_kv_blocks == ref.scheduler.num_kv_blocks   # memory rule: the record's (vLLM's)

    # The toy runs vLLM's kernels: its cost model reads the kernel tables built for the vLLM worker (profile
    # tables of an engine of its own would live under profiles/<gpu>/toy/); engine time is the toy record's.
    _, vllm_cost = llama_replicas
    limits = dict(max_tokens=vllm_cost.max_tokens, max_seqs=vllm_cost.max_seqs, max_model_len=vllm_cost.max_model_len)
    results = {}
    for d in (dep, ref):
        cost = IterationCostModel(d.worker, None, tables=vllm_cost.tables, **limits)
        assert cost.engine_time.name == d.worker.engine
        replicas = rank_replica_specs(d.replicas, d.worker.attention_dp, d.scheduler, cost, "r")
        trace = poisson_trace(24, 8.0, 256, 32, seed=3)
        results[d.worker.engine] = simulate_deployment(d, trace, replicas, seed=0)
    toy, vllm = results["toy"], results["vllm"]
    assert toy.summary["completed"] == vllm.summary["completed"] == 24
    # with overlap a step lasts at least its CPU time: every toy step >= 20 ms; vLLM's are GPU-bound below that
    assert toy.summary["median_tpot_ms"] >= TOY_STEP_S * 1e3 > vllm.summary["median_tpot_ms"]


# ---------------------------------------------------------------------------------------- deployment modes

def test_every_mode_names_its_record():
    assert list(MODES) == ["colocated", "pd", "af"]
    for name, rec in MODES.items():
        assert rec.deployment.mode == name and get_mode(name) is rec
    deps = [load_deployment(LLAMA_YAML),
            load_deployment(LLAMA_YAML.parent / "qwen3-235b-a22b-h100-vllm-pd.yaml"),
            load_deployment(LLAMA_YAML.parent / "qwen3-30b-a3b-h100-vllm-af.yaml")]
    assert [d.mode for d in deps] == ["colocated", "pd", "af"]
    assert [type(d) for d in deps] == [MODES[m].deployment for m in ("colocated", "pd", "af")]


def test_unknown_mode_lists_the_registered_ones():
    raw = yaml.safe_load(LLAMA_YAML.read_text())
    with pytest.raises(InputError, match=r"mode 'disaggregated' is not supported.*\['af', 'colocated', 'pd'\]"):
        deployment_from_dict({**raw, "mode": "disaggregated"})
