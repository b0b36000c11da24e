"""The worker counts of disagg silicon rows that do not record them, from the public recipe that ran them.

Most disagg rows of ``silicon_sample.csv`` give each side's per-worker parallelism but not how many prefill and
decode workers ran, and are skipped (``PD_LAYOUT_MISSING``, validate/silicon.py). Where the recipe sweep behind a
series is public, its files name the workers per load: a :class:`DisaggSeries` matches the series on the rows' own
columns, and a row replays as the ``mode: pd`` deployment of the one recipe entry (a
:class:`~frontier_calib.validate.harness.MultinodeRecipe`) that ran its prompt/output lengths and clients with its
per-worker GPU counts. None or several: skipped with the reason.

**GLM-5 NVFP4 on GB200 with dynamo + TensorRT-LLM** (the 22 ``2026_03_25_glm_5_gb200_trtllm_fp4_disagg_*`` rows,
``source_file=2026-03-25.csv``; prefill_tp_size 4, decode_tp_size 4/8/16/32, attention DP 1, EP 1, no worker
counts). InferenceX's ``.github/configs/nvidia-master.yaml`` has no GLM-5 GB200 entry in the versions read
(SemiAnalysisAI/InferenceX 0004cf5, 48f302c: ``dsr1-*``/``gptoss-*`` multinode configs only). NVIDIA/srt-slurm's
``recipes/GLM5/disagg/trtllm_dynamo/gb200_nvfp4/ISL{1K,8K}_OSL1K/{STP,MTP}/ctx<P>dep4_gen<D>{tep,dep}<G>_batch<B>_
eplb<S>_mtp<M>.yaml`` are that sweep: ``P`` prefill workers of one 4-GPU tray (TP4 EP4 with attention DP), ``D``
decode workers of ``G`` GPUs (``tep``: TP = EP = G, no attention DP; ``dep``: attention DP over G, EP G),
``max_batch_size`` ``B``, ``M`` MTP layers, and the clients in ``benchmark.concurrencies``. Every load of the 22
rows (isl/osl, clients, decode GPUs per worker) is in an STP file of that folder:

* 1,024/1,024 on 5 TEP4 decode workers at 5, 15, 30, 50 clients, and 8,192/1,024 at 5, 10, 25, 50:
  ``ctx1dep4_gen5tep4_batch8_allconc_eplb0_mtp0.yaml`` (10b3798), whose header reads "Merged concurrencies:
  batch1(5), batch2(15), batch4(30), batch8(50)" (8K: "batch1(5), batch2(10), batch4(25), batch8(50)"): each load
  ran the ``batch<B>`` recipe, ``max_batch_size`` B per worker. The measured TTFT agrees: 1,024/1,024 at 15 clients
  (3 per worker over a cap of 2) measures 5.4 s, at 5 clients (1 per worker) 0.47 s.
* 1,024/1,024 on 4 TEP8 decode workers at 4, 180, 360, 616 clients: ``ctx1dep4_gen4tep8_batch128_allconc_eplb0_
  mtp0.yaml`` (b8ae71a): "batch1(4), batch32(180), batch64(360), batch128(616)".
* 8,192/1,024: 3 TEP4 decode workers with batch 32 at 117 clients (``ctx1dep4_gen3tep4_batch32``, 10b3798).
* 1,024/1,024 DEP32 at 1,229 clients: 1 prefill worker, batch 32 (``ctx1dep4_gen1dep32_batch32``, 10b3798); at
  2,253: 2 prefill workers, batch 64 (``ctx2dep4_gen1dep32_batch64``, 5ed8518); at 8,192: 4 prefill workers,
  batch 256, 288 EPLB slots (``ctx4dep4_gen1dep32_batch256_eplb288``, 4e698b3). DEP16 at 2,253: 2 prefill
  workers, batch 128 (``ctx2dep4_gen1dep16_batch128``, 80ad33f); at 8,192: 2, batch 512, 256 EPLB slots
  (``ctx2dep4_gen1dep16_batch512_eplb256``, 7867e8f).

Prefill workers (all files): ``max_batch_size`` 16 and ``max_num_tokens`` 16,384 at 1,024/1,024, 2 and 16,640 at
8,192/1,024, ``free_gpu_memory_fraction`` 0.6 and ``disable_overlap_scheduler: true``; decode workers: the file's
``free_gpu_memory_fraction`` (0.9 TEP, 0.7 DEP32, 0.75 DEP16 at 1,024/1,024, 0.8 DEP16 / 0.75 DEP32 at
8,192/1,024) and ``max_num_tokens`` = batch x (1 + MTP), which never binds (the replay keeps its decode budget).

Six rows have no single entry and are skipped: at 8,192/1,024 two STP files run the same load with different
prefill (or decode) worker counts: 84 clients on TEP8 (``ctx1dep4_gen2tep8_batch32`` 10b3798 and
``ctx1dep4_gen4tep8_batch16`` 4f670a8), 615 on DEP32 (``ctx4dep4_gen1dep32_batch16`` adf51d1, ``ctx5dep4_...
batch16`` 4e698b3), 1,229 on DEP32 (``ctx6dep4_..._batch32`` cace8ad, ``ctx8dep4_..._batch32`` 7867e8f), 2,253 on
DEP16 (``ctx10dep4_..._batch128`` 80ad33f, ``ctx11dep4_..._batch128`` 4f670a8); at 1,024/1,024 an MTP file runs
the load of an STP one: 1,229 on DEP32 (``MTP/ctx2dep4_gen1dep32_batch32_eplb0_mtp2``, 4f670a8) and 2,253 on DEP16
(``MTP/ctx2dep4_gen1dep16_batch128_eplb0_mtp1``, 9d4f0c8), and the rows do not say which ran. The other MTP files
read run loads no row has (1,024/1,024: 8 on TEP8, 10 on TEP4, 24/36/96/192 on TEP8, 333/666 and 2,151 on DEP32,
1,229 on DEP16; 8,192/1,024: 4/48 on TEP8), so the rows are taken as the STP sweep. Each file is stored in
several versions whose client lists differ; the entries are the versions read (commit given); an entry whose
other versions ran other loads would be missed. Not modelled: the decode workers' ``stream_interval: 100`` and
the EPLB slots of the two batch-256/512 entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from .harness import MultinodeRecipe, PDPool, int_or_none, row_matches


def _missing(value) -> bool:
    return int_or_none(value) is None


#: prefill limits of the GLM-5 GB200 recipes per isl: (max_batch_size, max_num_tokens) per attention-DP rank
_P1K, _P8K = (16, 16384), (2, 16640)
#: the prefill workers' ``free_gpu_memory_fraction`` in every GLM-5 GB200 recipe file
_PREFILL_FRACTION = 0.6


def _prefill(workers: int, limits: tuple) -> PDPool:
    """``workers`` prefill workers of the GLM-5 GB200 recipes: one 4-GPU tray each, TP4 EP4 with attention DP."""
    return PDPool(workers, 4, 4, True, limits[0], limits[1], _PREFILL_FRACTION)


def _tep(workers: int, gpus: int, batch: int, fraction: float | None) -> PDPool:
    """``workers`` decode workers ``gen<workers>tep<gpus>``: TP = EP = ``gpus``, no attention DP."""
    return PDPool(workers, gpus, gpus, False, batch, batch, fraction)


def _dep(gpus: int, batch: int, fraction: float | None, mtp: int = 0) -> PDPool:
    """One decode worker ``gen1dep<gpus>``: attention DP over ``gpus`` GPUs, EP ``gpus``."""
    return PDPool(1, gpus, gpus, True, batch, batch * (1 + mtp), fraction)


_SRT = "NVIDIA/srt-slurm recipes/GLM5/disagg/trtllm_dynamo/gb200_nvfp4"

#: NVIDIA/srt-slurm's GLM-5 NVFP4 GB200 dynamo + TensorRT-LLM recipes (module docstring): file (commit read) per
#: entry. Decode memory fractions None: entries that only make a load ambiguous (never replayed), fraction not read.
GB200_GLM5_DYNAMO_TRT_FP4 = (
    # 1,024/1,024, STP
    MultinodeRecipe(1024, 1024, (5,), _prefill(1, _P1K), _tep(5, 4, 1, 0.9)),      # gen5tep4 batch1 (10b3798)
    MultinodeRecipe(1024, 1024, (15,), _prefill(1, _P1K), _tep(5, 4, 2, 0.9)),     # ... batch2
    MultinodeRecipe(1024, 1024, (30,), _prefill(1, _P1K), _tep(5, 4, 4, 0.9)),     # ... batch4
    MultinodeRecipe(1024, 1024, (50,), _prefill(1, _P1K), _tep(5, 4, 8, 0.9)),     # ... batch8
    MultinodeRecipe(1024, 1024, (4,), _prefill(1, _P1K), _tep(4, 8, 1, 0.9)),      # gen4tep8 batch1 (b8ae71a)
    MultinodeRecipe(1024, 1024, (180,), _prefill(1, _P1K), _tep(4, 8, 32, 0.9)),   # ... batch32
    MultinodeRecipe(1024, 1024, (360,), _prefill(1, _P1K), _tep(4, 8, 64, 0.9)),   # ... batch64
    MultinodeRecipe(1024, 1024, (616,), _prefill(1, _P1K), _tep(4, 8, 128, 0.9)),  # ... batch128
    MultinodeRecipe(1024, 1024, (1229,), _prefill(1, _P1K), _dep(32, 32, 0.7)),    # ctx1 gen1dep32 batch32 (10b3798)
    MultinodeRecipe(1024, 1024, (2253,), _prefill(2, _P1K), _dep(32, 64, 0.7)),    # ctx2 gen1dep32 batch64 (5ed8518)
    MultinodeRecipe(1024, 1024, (8192,), _prefill(4, _P1K), _dep(32, 256, 0.7)),   # ctx4 ... batch256 eplb288 (4e698b3)
    MultinodeRecipe(1024, 1024, (2253,), _prefill(2, _P1K), _dep(16, 128, 0.75)),  # ctx2 gen1dep16 batch128 (80ad33f)
    MultinodeRecipe(1024, 1024, (8192,), _prefill(2, _P1K), _dep(16, 512, 0.75)),  # ... batch512 eplb256 (7867e8f)
    # 1,024/1,024, MTP: the loads of two STP entries
    MultinodeRecipe(1024, 1024, (1229,), _prefill(2, _P1K), _dep(32, 32, 0.6, 2), 2),   # ctx2 dep32 b32 mtp2 (4f670a8)
    MultinodeRecipe(1024, 1024, (2253,), _prefill(2, _P1K), _dep(16, 128, 0.7, 1), 1),  # ctx2 dep16 b128 mtp1 (9d4f0c8)
    # 8,192/1,024, STP
    MultinodeRecipe(8192, 1024, (5,), _prefill(1, _P8K), _tep(5, 4, 1, 0.9)),      # gen5tep4 batch1 (10b3798)
    MultinodeRecipe(8192, 1024, (10,), _prefill(1, _P8K), _tep(5, 4, 2, 0.9)),     # ... batch2
    MultinodeRecipe(8192, 1024, (25,), _prefill(1, _P8K), _tep(5, 4, 4, 0.9)),     # ... batch4
    MultinodeRecipe(8192, 1024, (50,), _prefill(1, _P8K), _tep(5, 4, 8, 0.9)),     # ... batch8
    MultinodeRecipe(8192, 1024, (117,), _prefill(1, _P8K), _tep(3, 4, 32, 0.9)),   # gen3tep4 batch32 (10b3798)
    MultinodeRecipe(8192, 1024, (84,), _prefill(1, _P8K), _tep(2, 8, 32, 0.9)),    # gen2tep8 batch32 (10b3798)
    MultinodeRecipe(8192, 1024, (84,), _prefill(1, _P8K), _tep(4, 8, 16, None)),   # gen4tep8 batch16 (4f670a8)
    MultinodeRecipe(8192, 1024, (615,), _prefill(4, _P8K), _dep(32, 16, None)),    # ctx4 gen1dep32 batch16 (adf51d1)
    MultinodeRecipe(8192, 1024, (615,), _prefill(5, _P8K), _dep(32, 16, None)),    # ctx5 ... (4e698b3)
    MultinodeRecipe(8192, 1024, (1229,), _prefill(6, _P8K), _dep(32, 32, None)),   # ctx6 gen1dep32 batch32 (cace8ad)
    MultinodeRecipe(8192, 1024, (1229,), _prefill(8, _P8K), _dep(32, 32, 0.75)),   # ctx8 ... (7867e8f)
    MultinodeRecipe(8192, 1024, (2253,), _prefill(10, _P8K), _dep(16, 128, 0.8)),  # ctx10 gen1dep16 batch128 (80ad33f)
    MultinodeRecipe(8192, 1024, (2253,), _prefill(11, _P8K), _dep(16, 128, 0.8)),  # ctx11 ... (4f670a8)
)


@dataclass(frozen=True)
class DisaggSeries:
    """A series of disagg rows without worker counts whose recipe sweep is public (module docstring). Matched on
    the rows' own columns (:meth:`matches`); :meth:`layouts` gives the entries that ran a row's load with its
    per-worker GPU counts. ``prefill_overlap``: the prefill workers' overlap scheduler as the recipes launch it
    (None: the engine's default)."""

    name: str
    gpu: str                      #: ``system``
    engine: str                   #: ``backend``
    source_contains: str          #: a substring of ``silicon_data_source``
    model_contains: str           #: a lower-case substring of ``model_path``
    precision: str                #: the ``precision`` column
    recipes: tuple = ()           #: :class:`~frontier_calib.validate.harness.MultinodeRecipe` entries
    prefill_overlap: bool | None = None
    source: str = ""

    def matches(self, row: dict) -> bool:
        return (row_matches(row, mode="disagg", gpu=self.gpu, engine=self.engine, precision=self.precision,
                            model_contains=self.model_contains, source_contains=self.source_contains)
                and _missing(row.get("prefill_num_workers")) and _missing(row.get("decode_num_workers")))

    @staticmethod
    def _worker_gpus(row: dict, side: str) -> int | None:
        """GPUs per ``side`` worker as the row states them: tp x attention DP x pp."""
        tp = int_or_none(row.get(f"{side}_tp_size"))
        if tp is None:
            return None
        return tp * (int_or_none(row.get(f"{side}_attention_dp_size")) or 1) * (
            int_or_none(row.get(f"{side}_pp_size")) or 1)

    def layouts(self, row: dict, concurrency: int | None = None) -> list:
        """The entries at the row's isl/osl and ``concurrency`` clients (default: its ``concurrency`` column)
        whose prefill and decode workers have the row's GPUs per worker."""
        isl, osl = int_or_none(row.get("isl")), int_or_none(row.get("osl"))
        conc = int_or_none(row.get("concurrency")) if concurrency is None else int(concurrency)
        pg, dg = self._worker_gpus(row, "prefill"), self._worker_gpus(row, "decode")
        return [r for r in self.recipes if r.isl == isl and r.osl == osl and conc in r.concurrency
                and r.prefill.tp == pg and r.decode.tp == dg]

    def skip_reason(self, row: dict, found: list, concurrency: int | None = None) -> str:
        """Why a row of the series is not replayed: no entry, several, or an MTP one (no GLM-5 accept length)."""
        conc = int_or_none(row.get("concurrency")) if concurrency is None else int(concurrency)
        dg = self._worker_gpus(row, "decode")
        head = (f"disagg row without prefill/decode worker counts ({self.name}, "
                f"{row.get('isl')}/{row.get('osl')}, {conc} clients, {dg}-GPU decode workers)")
        if not found:
            return f"{head}: no recipe entry read runs this load (validate/disagg_layouts.py)"
        if len(found) > 1:
            return (f"{head}: {len(found)} recipe entries run this load ("
                    + "; ".join(r.describe() for r in found) + "), the row does not say which "
                    "(validate/disagg_layouts.py)")
        return (f"{head}: its recipe entry runs MTP {found[0].mtp}, whose accept length for this model is not "
                "transcribed (validate/disagg_layouts.py)")

    def recipe(self, row: dict, concurrency: int | None = None) -> tuple:
        """(the one replayable entry or None, the skip reason or "")."""
        found = self.layouts(row, concurrency)
        if len(found) == 1 and not found[0].mtp:
            return found[0], ""
        return None, self.skip_reason(row, found, concurrency)

    def apply(self, deployment: dict, recipe: MultinodeRecipe) -> list:
        """Set ``recipe``'s engine limits on a ``mode: pd`` ``deployment`` (its pools' schedulers already built)
        and the prefill workers' overlap; returns the notes."""
        notes = recipe.apply(deployment, self.name)
        if self.prefill_overlap is not None:
            deployment["prefill"].setdefault("engine_options", {})["overlap"] = self.prefill_overlap
            notes.append(f"{self.name}: prefill workers with overlap {'on' if self.prefill_overlap else 'off'} "
                         "(disable_overlap_scheduler, validate/disagg_layouts.py)")
        return notes


#: the disagg series whose worker counts come from a public recipe (module docstring)
DISAGG_SERIES = (
    DisaggSeries(name="the 2026-03-25 GLM-5 GB200 TensorRT-LLM series (NVIDIA/srt-slurm GLM5 gb200_nvfp4)",
                 gpu="gb200", engine="trtllm", source_contains="source_file=2026-03-25.csv", model_contains="glm-5",
                 precision="fp4", recipes=GB200_GLM5_DYNAMO_TRT_FP4, prefill_overlap=False,
                 source=f"{_SRT}/ISL1K_OSL1K and ISL8K_OSL1K, STP and MTP (commits per entry)"),
)


def disagg_series(row: dict) -> DisaggSeries | None:
    """The :data:`DISAGG_SERIES` entry a silicon row (a dict) belongs to, None for every other row."""
    return next((s for s in DISAGG_SERIES if s.matches(row)), None)
