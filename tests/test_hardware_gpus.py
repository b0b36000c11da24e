"""GPU specs in frontier_calib/hardware.py: aliases people type, CUDA device names, and agreement with
aiconfigurator-core's spec YAMLs where that package is installed (the ``public-data`` extra)."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontier_calib.errors import FrontierError
from frontier_calib.hardware import GPUS, get_gpu, gpu_from_device_name

NEW_GPUS = ("b200_sxm", "b300_sxm", "gb200", "gb300", "rtx_pro_6000_server", "l40s", "h800_sxm")


@pytest.mark.parametrize("alias,gid", [
    ("b200", "b200_sxm"), ("B200", "b200_sxm"), ("HGX B200", "b200_sxm"), ("b300", "b300_sxm"),
    ("gb200", "gb200"), ("GB200 NVL72", "gb200"), ("gb200-nvl72", "gb200"), ("GB300", "gb300"),
    ("rtx pro 6000", "rtx_pro_6000_server"), ("rtxpro6000", "rtx_pro_6000_server"),
    ("RTX PRO 6000 Blackwell Server Edition", "rtx_pro_6000_server"), ("RTX-PRO-6000", "rtx_pro_6000_server"),
    ("rtx_pro_6000_server", "rtx_pro_6000_server"), ("l40s", "l40s"), ("L40S", "l40s"),
    ("h800", "h800_sxm"), ("H800", "h800_sxm"), ("h100", "h100_sxm"), ("H100-SXM", "h100_sxm"),
])
def test_aliases_resolve(alias, gid):
    assert get_gpu(alias).name == gid


@pytest.mark.parametrize("device,gid", [
    ("NVIDIA B200", "b200_sxm"), ("NVIDIA GB200", "gb200"), ("NVIDIA GB300", "gb300"),
    ("NVIDIA B300 SXM6 AC", "b300_sxm"), ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx_pro_6000_server"),
    ("NVIDIA L40S", "l40s"), ("NVIDIA H800", "h800_sxm"), ("NVIDIA H100 80GB HBM3", "h100_sxm"),
    ("NVIDIA H200", "h200_sxm"), ("NVIDIA A100-SXM4-80GB", "a100_sxm"), ("Tesla T4", None),
])
def test_device_names(device, gid):
    assert gpu_from_device_name(device) == gid


def test_unknown_gpu_lists_known_ones():
    with pytest.raises(FrontierError) as exc:
        get_gpu("mi300x")
    msg = str(exc.value)
    assert "\n" not in msg and "mi300x" in msg
    for gid in NEW_GPUS:
        assert gid in msg


def test_interconnects():
    # NVL72: one NVLink domain of 72 GPUs across 4-GPU trays
    for gid in ("gb200", "gb300"):
        g = get_gpu(gid)
        assert g.nvlink_domain == 72 and g.tray_size == 4 and g.intra_node_link == "nvlink"
    # no NVLink: collectives over PCIe (Gen5 x16 / Gen4 x16, per direction)
    assert get_gpu("rtx_pro_6000_server").intra_node_link == "pcie"
    assert get_gpu("rtx_pro_6000_server").nvlink_bandwidth == 64e9
    assert get_gpu("l40s").nvlink_bandwidth == 32e9 and get_gpu("l40s").nvlink_domain == 1
    # H800: H100 compute with NVLink at 400 GB/s total (H100: 900)
    h800, h100 = get_gpu("h800"), get_gpu("h100")
    assert h800.peak_flops == h100.peak_flops and h800.hbm_bandwidth == h100.hbm_bandwidth
    assert h800.nvlink_bandwidth * 2 == 400e9 and h100.nvlink_bandwidth * 2 == 900e9
    assert get_gpu("b200").nvlink_domain == 8 and get_gpu("b200").tray_size == 8


def test_fp4_only_on_blackwell():
    for gid in ("b200_sxm", "b300_sxm", "gb200", "gb300", "rtx_pro_6000_server"):
        g = get_gpu(gid)
        assert g.has_fp4
        assert g.flops("nvfp4") > g.flops("fp8") > g.flops("bf16")
    for gid in ("h100_sxm", "h200_sxm", "h800_sxm", "a100_sxm", "l40s"):
        assert not get_gpu(gid).has_fp4


def _aic_systems() -> Path:
    aic = pytest.importorskip("aiconfigurator_core")
    return Path(aic.__file__).parent / "systems"


@pytest.mark.parametrize("gid", [g for g in GPUS if g not in ("cpu", "h800_sxm")])
def test_consistent_with_aiconfigurator_yaml(gid):
    yaml = pytest.importorskip("yaml")
    path = _aic_systems() / f"{gid}.yaml"
    if not path.exists():
        pytest.skip(f"aiconfigurator-core has no {gid}.yaml")
    src = yaml.safe_load(path.read_text())
    g, node = get_gpu(gid), src["node"]
    gpu = src["gpu"]
    assert g.hbm_bandwidth == pytest.approx(gpu["mem_bw"], rel=0.01)
    assert g.memory_bytes == pytest.approx(gpu["mem_capacity"], rel=0.01)
    for ours, theirs in (("bf16", "bfloat16_tc_flops"), ("fp8", "fp8_tc_flops"), ("int8", "int8_tc_flops"),
                         ("fp4", "fp4_tc_flops")):
        if theirs in gpu:
            assert g.peak_flops[ours] == pytest.approx(gpu[theirs], rel=0.002), ours
        else:
            assert ours not in g.peak_flops, ours
    assert g.nvlink_bandwidth == pytest.approx(node["intra_node_bw"], rel=0.01)
    assert g.gpus_per_node == node.get("num_gpus_per_rack", node["num_gpus_per_node"])
    assert g.tray_size == node["num_gpus_per_node"]
