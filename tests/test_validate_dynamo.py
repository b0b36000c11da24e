"""A disaggregated TensorRT-LLM silicon row records its Dynamo image tag, not the engine's release
(frontier_calib/validate/dynamo.py): the replay must read the engine release inside the image."""

from frontier_calib.cost.engine_time import engine_time
from frontier_calib.engines import default_overlap
from frontier_calib.validate.dynamo import engine_release
from frontier_calib.validate.silicon import scenario_for_row


def test_listed_dynamo_tag_maps_to_the_trtllm_release_inside_the_image():
    assert engine_release("trtllm", "0.8.1.post1", through_dynamo=True) == "1.2.0rc6.post2"
    assert engine_release("trtllm", "0.6.0", through_dynamo=True) == "1.1.0rc5"


def test_unlisted_dynamo_tag_names_no_release_so_the_engine_default_overlap_applies():
    assert engine_release("trtllm", "0.8.1.post3", through_dynamo=True) is None
    assert engine_release("trtllm", "0.5.1-rc0.pre3", through_dynamo=True) is None
    assert default_overlap("trtllm", None) is True
    # read as a TensorRT-LLM release the tag would turn the overlap scheduler off
    assert default_overlap("trtllm", "0.8.1.post3") is False


def test_real_engine_releases_and_other_engines_pass_through():
    assert engine_release("trtllm", "1.1.0-dev.2", through_dynamo=True) == "1.1.0-dev.2"
    assert engine_release("trtllm", "0.8.1.post1", through_dynamo=False) == "0.8.1.post1"   # an agg row
    assert engine_release("sglang", "0.5.8.post1", through_dynamo=True) == "0.5.8.post1"
    assert engine_release("trtllm", "nan", through_dynamo=True) is None
    assert engine_release("trtllm", None, through_dynamo=True) is None


def test_a_disaggregated_row_with_a_dynamo_tag_replays_with_the_overlap_scheduler():
    from pathlib import Path

    from frontier_calib.deployment import deployment_from_dict
    from frontier_calib.validate.silicon import read_silicon_csv

    df = read_silicon_csv(Path(__file__).parent / "fixtures" / "validate" / "silicon_small.csv")
    row = df[df["id"] == "dsr1_h200_trtllm_disagg_nocounts_c64"].iloc[0].to_dict()
    row["backend_version"] = "0.8.1.post2"
    w = deployment_from_dict(scenario_for_row(row, assume_pd_layout=True).deployment).decode.worker
    assert engine_time("trtllm", version=w.engine_version, overlap=w.overlap).overlap is True
    assert w.engine_version is None                       # the tag is unlisted: the engine's defaults
    row["backend_version"] = "0.8.1.post1"                # a listed tag: the release inside the image
    w = deployment_from_dict(scenario_for_row(row, assume_pd_layout=True).deployment).decode.worker
    assert w.engine_version == "1.2.0rc6.post2"
