"""Engine defaults that changed between versions: CPU/GPU overlap (and scheduling one step ahead) arrived with
vLLM 0.14 (async scheduling), SGLang 0.4 and TensorRT-LLM 0.20 (overlap schedulers). The silicon rows and the run
folders say which version measured them, and that version's default is replayed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frontier_calib.deployment import deployment_from_dict
from frontier_calib.engines import default_overlap, engine_version
from frontier_calib.validate import silicon as S
from frontier_calib.validate.run_folder import deployment_for_run, engine_facts

SMALL_CSV = Path(__file__).parent / "fixtures" / "validate" / "silicon_small.csv"


@pytest.mark.parametrize("text,want", [("0.12.0", (0, 12, 0)), ("v0.19.0", (0, 19, 0)), ("1.1.0rc2.post2", (1, 1, 0)),
                                       ("0.5.1.post1", (0, 5, 1)), ("2.0", (2, 0, 0)), ("glm5-hopper", None),
                                       ("", None), (None, None), (float("nan"), None)])
def test_engine_version(text, want):
    assert engine_version(text) == want


def test_default_overlap_by_version():
    assert default_overlap("vllm", "0.12.0") is False and default_overlap("vllm", "0.13.9") is False
    assert default_overlap("vllm", "0.14.0") is True and default_overlap("vllm", "0.19.0") is True
    assert default_overlap("vllm") is True                       # no version: today's default
    assert default_overlap("vllm", "nightly") is True            # not a numbered release: today's default
    assert default_overlap("sglang", "0.3.6") is False and default_overlap("sglang", "0.5.9") is True
    assert default_overlap("trtllm", "0.19.0") is False and default_overlap("trtllm", "1.0.0rc3") is True


def _row(version):
    row = S.read_silicon_csv(SMALL_CSV).iloc[0].to_dict()
    return {**row, "backend": "vllm", "backend_version": version}


def test_silicon_rows_replay_their_versions_default():
    old = S.scenario_for_row(_row("0.12.0")).deployment
    new = S.scenario_for_row(_row("0.18.0")).deployment
    # the release rides along (engine_options.version, for kinds whose code paths changed between releases)
    assert old["engine_options"] == {"version": "0.12.0", "overlap": False}
    assert new["engine_options"] == {"version": "0.18.0"}                                 # overlap: the engine's
    assert "engine_options" not in S.scenario_for_row(_row(float("nan"))).deployment   # unknown: the engine's
    assert deployment_from_dict(old).worker.overlap is False


def test_run_folders_replay_their_versions_default(tmp_path):
    meta = {"vllm_version": "0.12.0", "engine_kwargs": {"model": "meta-llama/Llama-2-7b-hf"}}
    assert engine_facts(meta, "meta.json")["engine_options"] == {"overlap": False}
    assert engine_facts({**meta, "vllm_version": "0.19.0"}, "meta.json")["engine_options"] == {}   # the default
    # what the engine recorded it ran with wins over the version's default
    rec = {**meta, "resolved_config": {"scheduler_config": {"async_scheduling": True}}}
    assert engine_facts(rec, "meta.json")["engine_options"] == {"overlap": True}
    d = tmp_path / "run"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps(meta))
    assert deployment_for_run(d, "h100_sxm")["engine_options"] == {"overlap": False}


def test_a_deployments_version_picks_the_engines_overlap_default():
    """``engine_options.version`` selects the release's default CPU/GPU overlap (vLLM schedules after each step
    before 0.14); an explicit ``overlap`` still wins."""
    from frontier_calib.cost.engine_time import engine_time

    assert engine_time("vllm", version="0.11.0").overlap is False
    assert engine_time("vllm", version="0.15.1").overlap is True
    assert engine_time("vllm").overlap is True
    assert engine_time("vllm", version="0.11.0", overlap=True).overlap is True
    base = {"model": "Llama-2-7b", "gpu": "h100_sxm", "engine": "vllm"}
    old = deployment_from_dict({**base, "engine_options": {"version": "0.11.0"}})
    assert old.worker.engine_version == "0.11.0" and old.worker.overlap is None
