"""Test-session settings shared by every test module."""

import os

# XGBoost's OpenMP threads spin while they wait. On a machine whose cores are busy with other work
# (CI runners, parallel test sessions) that turns a 0.5 s fit into 30 s or more. Passive waiting
# costs nothing measurable here; it has to be set before xgboost (libgomp) is first loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Profile tables imported on first use (GPUs beyond the bundle) go to a throwaway folder, never into the
# user's data folder (FRONTIER_CALIB_TEST_DATA keeps one between sessions while iterating).
import tempfile  # noqa: E402

os.environ["FRONTIER_CALIB_DATA"] = (os.environ.get("FRONTIER_CALIB_TEST_DATA")
                                     or tempfile.mkdtemp(prefix="frontier_calib_data_"))


# ---------------------------------------------------------------------------------------------------------
# Fitted operator models and cost tables, shared by every test that replays through the real cost model.
#
# The first cost model of a test session fits the XGBoost operator models it needs (gemm, attention_prefill,
# attention_decode for Llama-2-7b on h100_sxm/vllm: about a minute on 2 cores) into a session-scoped cache;
# every later test loads them (or the .npz cost tables) from there. Set FRONTIER_CALIB_TEST_CACHE to a
# folder to keep that cache between sessions while iterating (its keys hash the profile tables and the
# fitted models, but not the opmodel code: clear it after changing how models are fitted).
import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LLAMA_DEPLOYMENT = REPO_ROOT / "deployments" / "llama2-7b-h100-vllm.yaml"


@pytest.fixture(scope="session")
def frontier_cache(tmp_path_factory):
    """FRONTIER_CALIB_CACHE pointed at one folder for the rest of the session (fitting happens once)."""
    path = os.environ.get("FRONTIER_CALIB_TEST_CACHE") or str(tmp_path_factory.mktemp("frontier_calib_cache"))
    mp = pytest.MonkeyPatch()
    mp.setenv("FRONTIER_CALIB_CACHE", path)
    yield pathlib.Path(path)
    mp.undo()


@pytest.fixture(scope="session")
def llama_deployment(frontier_cache):
    """deployments/llama2-7b-h100-vllm.yaml, loaded."""
    from frontier_calib.deployment import load_deployment

    return load_deployment(LLAMA_DEPLOYMENT)


@pytest.fixture(scope="session")
def llama_replicas(llama_deployment):
    """(replica specs, IterationCostModel) of the Llama-2-7b / H100 / vLLM deployment: the real cost model."""
    from frontier_calib.deployment import build_replicas

    return build_replicas(llama_deployment)


@pytest.fixture(scope="session")
def cost(llama_replicas):
    """The IterationCostModel of the Llama-2-7b / H100 / vLLM deployment."""
    return llama_replicas[1]


@pytest.fixture(scope="session")
def worker(llama_deployment):
    """The WorkerSpec of the Llama-2-7b / H100 / vLLM deployment."""
    return llama_deployment.worker
