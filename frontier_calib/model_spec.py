"""Model architecture from a Hugging Face ``config.json`` (dense, MoE, MLA) or a bundled preset.

Everything downstream (profiling shape grids, the cost model, KV-cache sizing) reads model shapes
from :class:`ModelSpec`, never from raw configs. Units: parameters are counts, sizes are **bytes**,
GEMM dimensions are features, ``m`` (the token count) is left to the caller.

Presets live in ``frontier_calib/data/models/<short name>.json`` (see ``NOTICE.md`` there);
:data:`PRESETS` is the one table mapping Hugging Face ids to those files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .dtypes import DTYPE_BYTES, normalize_dtype
from .errors import FrontierError, InputError

DATA_DIR = Path(__file__).resolve().parent / "data" / "models"

#: Hugging Face id -> preset file name (without ``.json``) under ``data/models``. The one place for this.
PRESETS: dict[str, str] = {
    "meta-llama/Llama-2-7b-hf": "Llama-2-7b",
    "meta-llama/Meta-Llama-3.1-8B": "Meta-Llama-3.1-8B",
    "meta-llama/Meta-Llama-3.1-70B": "Meta-Llama-3.1-70B",
    "meta-llama/Meta-Llama-3.1-405B": "Meta-Llama-3.1-405B",
    "mistralai/Mistral-7B-v0.1": "Mistral-7B-v0.1",
    "mistralai/Mixtral-8x7B-v0.1": "Mixtral-8x7B-v0.1",
    "mistralai/Mixtral-8x22B-v0.1": "Mixtral-8x22B-v0.1",
    "Qwen/Qwen3-8B": "Qwen3-8B",
    "Qwen/Qwen3-32B": "Qwen3-32B",
    "Qwen/Qwen3-32B-FP8": "Qwen3-32B-FP8",
    "Qwen/Qwen3-30B-A3B": "Qwen3-30B-A3B",
    "Qwen/Qwen3-30B-A3B-FP8": "Qwen3-30B-A3B-FP8",
    "Qwen/Qwen3-235B-A22B": "Qwen3-235B-A22B",
    "Qwen/Qwen3-235B-A22B-FP8": "Qwen3-235B-A22B-FP8",
    "deepseek-ai/DeepSeek-V3": "DeepSeek-V3",
    "deepseek-ai/DeepSeek-R1": "DeepSeek-R1",
    "moonshotai/Kimi-K2-Instruct": "Kimi-K2-Instruct",
    "openai/gpt-oss-20b": "gpt-oss-20b",
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "MiniMaxAI/MiniMax-M2.5": "MiniMax-M2.5",
    "Qwen/Qwen3.5-27B": "Qwen3.5-27B",
    "Qwen/Qwen3.5-35B-A3B": "Qwen3.5-35B-A3B",
    "Qwen/Qwen3.5-122B-A10B": "Qwen3.5-122B-A10B",
    "Qwen/Qwen3.5-397B-A17B": "Qwen3.5-397B-A17B",
    "zai-org/GLM-5": "GLM-5",
    "deepseek-ai/DeepSeek-V3.2": "DeepSeek-V3.2",
    "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": "Nemotron-3-Nano-30B-A3B",
    "nvidia/Nemotron-H-56B-Base-8K": "Nemotron-H-56B-Base-8K",
    "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8": "Nemotron-3-Super-120B-A12B-FP8",
    "moonshotai/Kimi-K3": "Kimi-K3",
    "MiniMaxAI/MiniMax-M3": "MiniMax-M3",
}

#: other spellings seen in the wild -> Hugging Face id in PRESETS
_PRESET_ALIASES: dict[str, str] = {
    "meta-llama/Llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-3.1-8B": "meta-llama/Meta-Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
    "meta-llama/Llama-3.1-405B": "meta-llama/Meta-Llama-3.1-405B",
    "Llama-3.1-8B": "meta-llama/Meta-Llama-3.1-8B",
    "Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
    "Llama-3.1-405B": "meta-llama/Meta-Llama-3.1-405B",
    # the 2507 instruct refresh keeps the architecture (config.json shapes) of the original release
    "Qwen/Qwen3-30B-A3B-Instruct-2507": "Qwen/Qwen3-30B-A3B",
    "Qwen/Qwen3-235B-A22B-Instruct-2507": "Qwen/Qwen3-235B-A22B",
    # the organisation's former name (Zhipu AI); the FP8 checkpoint keeps the shapes (its format comes from the
    # deployment's dtype)
    "zhipuai/GLM-5": "zai-org/GLM-5",
    "zai-org/GLM-5-FP8": "zai-org/GLM-5",
}

#: architectures this module understands, by family of config fields
_DENSE = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}
_MOE = {"MixtralForCausalLM", "Qwen3MoeForCausalLM", "GptOssForCausalLM", "MiniMaxM2ForCausalLM"}
_MLA = {"DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"}
#: MLA with the DeepSeek sparse-attention indexer (``index_*`` fields)
_DSA = {"DeepseekV32ForCausalLM", "GlmMoeDsaForCausalLM"}
#: hybrid gated-DeltaNet / full-attention models (``linear_*`` fields, ``layer_types`` or ``full_attention_interval``);
#: the Qwen3.5 checkpoints wrap the text model's fields in ``text_config`` (their vision tower does not run for text)
_HYBRID_GDN = {"Qwen3NextForCausalLM", "Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"}
#: hybrid Mamba2 models (Nemotron-H): one mixer or one MLP/MoE per block, per ``hybrid_override_pattern``
_HYBRID_MAMBA = {"NemotronHForCausalLM"}
#: hybrid Kimi Delta Attention / MLA models (``linear_attn_config``); Kimi-K3 wraps the text model in ``text_config``
_KIMI_LINEAR = {"KimiLinearForCausalLM", "KimiK3ForConditionalGeneration"}
#: MoE with MiniMax sparse attention (``sparse_attention_config``): GQA over the top-k blocks an indexer selects
_MSA = {"MiniMaxM3ForCausalLM"}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(sorted(_DENSE | _MOE | _MLA | _DSA | _HYBRID_GDN | _HYBRID_MAMBA
                                                        | _KIMI_LINEAR | _MSA))

#: attention kinds without a growing KV cache (recurrent state per sequence); the others are "full" attention
LINEAR_KINDS = ("gdn", "mamba2", "kda")


@dataclass(frozen=True)
class MLASpec:
    """Multi-head latent attention dimensions (DeepSeek-V2/V3, Kimi-K2). All in elements."""
    q_lora_rank: int | None          #: None = no query compression (q_proj is a plain GEMM)
    kv_lora_rank: int                #: latent KV width cached per token
    qk_nope_head_dim: int
    qk_rope_head_dim: int            #: decoupled RoPE key width, cached per token next to the latent
    v_head_dim: int


@dataclass(frozen=True)
class LinearAttentionSpec:
    """Gated-DeltaNet linear attention dimensions (Qwen3.5 / Qwen3-Next ``linear_*`` config fields), in elements.

    A linear-attention layer keeps a recurrent state per sequence instead of a growing KV cache: one
    ``head_k_dim x head_v_dim`` matrix per value head (``state_bytes`` per element, fp32 in the public checkpoints'
    ``mamba_ssm_dtype``) plus the last ``conv_kernel - 1`` inputs of its causal convolution (activation format).
    """
    num_k_heads: int                 #: query/key heads
    num_v_heads: int                 #: value heads (one recurrent state each)
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int                 #: causal depthwise convolution width (tokens)
    state_bytes: int = 4             #: bytes per recurrent-state element (fp32)

    @property
    def key_dim(self) -> int:
        return self.num_k_heads * self.head_k_dim

    @property
    def value_dim(self) -> int:
        return self.num_v_heads * self.head_v_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the causal convolution: q, k and v."""
        return 2 * self.key_dim + self.value_dim


@dataclass(frozen=True)
class Mamba2Spec:
    """Mamba2 mixer dimensions (Nemotron-H ``mamba_*`` / ``ssm_state_size`` / ``n_groups`` config fields), in
    elements. The mixer's inner width is ``num_heads x head_dim``; B and C are shared by the heads of each of
    ``n_groups`` groups. Per running sequence a layer keeps one ``head_dim x state_size`` SSM state per head
    (``state_bytes`` per element: the config's ``mamba_ssm_cache_dtype``, fp32 in the public checkpoints) plus
    the last ``conv_kernel - 1`` inputs of its causal convolution (activation format), nothing per token."""
    num_heads: int
    head_dim: int
    state_size: int                  #: N, the SSM state width per head
    n_groups: int                    #: groups sharing B and C
    conv_kernel: int                 #: causal depthwise convolution width (tokens)
    chunk_size: int                  #: tokens per chunk of the chunked SSD scan in prefill
    state_bytes: int = 4             #: bytes per SSM-state element

    @property
    def inner(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the causal convolution: x, B and C."""
        return self.inner + 2 * self.n_groups * self.state_size


@dataclass(frozen=True)
class SparseIndexerSpec:
    """DeepSeek sparse attention (DSA) indexer (DeepSeek-V3.2, GLM-5 ``index_*`` config fields): a light
    multi-head scorer picks ``index_topk`` cached tokens per query; MLA then attends to those only."""
    index_n_heads: int
    index_head_dim: int
    index_topk: int                  #: tokens each query attends to (past this context length cost stops growing)


@dataclass(frozen=True)
class BlockSparseSpec:
    """MiniMax sparse attention (MSA, MiniMax-M3 ``sparse_attention_config``): per query, an indexer of
    ``index_n_heads`` heads scores the cached tokens block by block (``block_size`` tokens) and GQA attends to the
    ``topk_blocks`` best blocks only (local block included), i.e. at most ``topk_tokens`` keys."""
    index_n_heads: int
    index_head_dim: int
    topk_blocks: int
    block_size: int                  #: tokens per block

    @property
    def topk_tokens(self) -> int:
        return self.topk_blocks * self.block_size


@dataclass(frozen=True)
class GemmShape:
    """One GEMM a layer issues on one GPU: C[m, n] = A[m, k] @ B[k, n], m = tokens at call time.

    ``count`` > 1 means ``count`` independent GEMMs of this shape (a batched GEMM, e.g. the per-head
    absorbed MLA projections).
    """
    name: str
    n: int                           #: output features per GPU
    k: int                           #: input (reduction) features per GPU
    count: int = 1


@dataclass(frozen=True)
class ModelSpec:
    """Architecture facts of one decoder-only LLM (per model, not per GPU unless a method says so)."""
    name: str
    architecture: str                #: Hugging Face architecture, e.g. "MixtralForCausalLM"
    hidden_size: int
    num_layers: int                  #: decoder layers (MTP / next-n prediction layers excluded)
    vocab_size: int
    num_heads: int                   #: attention (query) heads
    num_kv_heads: int                #: key/value heads (= num_heads for MHA and MLA)
    head_dim: int                    #: query/key head dimension (MLA: nope + rope)
    intermediate_size: int           #: dense MLP intermediate (dense layers / dense-first layers); for
    #                                  pure-MoE configs whose config has no separate field it equals the expert size
    num_experts: int = 0             #: routed experts per MoE layer (0 = dense model)
    topk: int = 0                    #: routed experts per token
    moe_intermediate_size: int = 0   #: intermediate size of one routed expert
    num_shared_experts: int = 0      #: shared experts, each of moe_intermediate_size (DeepSeek)
    expert_groups: int = 0           #: groups of the grouped (DeepSeek ``noaux_tc``) top-k routing, the config's
    #                                  ``n_group``: a token picks ``topk_group`` groups, then its experts in them;
    #                                  0 = the router picks its experts among all of them (no grouped routing)
    first_dense_layers: int = 0      #: dense layers in an MoE model (DeepSeek first_k_dense_replace,
    #                                  Qwen3-MoE mlp_only_layers count)
    mla: MLASpec | None = None
    sliding_window: int = 0          #: tokens; 0 = none
    sliding_window_layers: int = 0   #: layers that use the window (gpt-oss: every other layer)
    tie_word_embeddings: bool = False
    weight_dtype: str = "bf16"       #: format of the quantized linear weights (experts at least)
    dense_weight_dtype: str | None = None  #: format of attention/dense-MLP weights when it differs
    #                                        from weight_dtype (gpt-oss: bf16 attention, mxfp4 experts)
    attention_bias: bool = False
    max_position_embeddings: int = 0  #: tokens; the model's context limit (0 = unknown)
    layer_kinds: tuple = ()          #: ((attention kind, layers), ...) for hybrid models (frontier_calib.attention);
    #                                  () = every layer one kind: 'mla' with an MLA spec (or 'dsa' with an indexer), else 'gqa'
    linear_attention: LinearAttentionSpec | None = None   #: gated-DeltaNet layers' dimensions (hybrid models)
    sparse_indexer: SparseIndexerSpec | None = None       #: DSA indexer (sparse MLA)
    attention_output_gate: bool = False  #: full-attention q_proj also emits a sigmoid output gate (Qwen3.5)
    #: the shared expert's output is scaled by sigmoid(x @ w), w: hidden x 1, replicated and unquantized (the
    #: Qwen2-MoE block of Qwen3-Next / Qwen3.5: SGLang and vLLM ``shared_expert_gate``)
    shared_expert_gate: bool = False
    mamba: Mamba2Spec | None = None  #: Mamba2 mixers' dimensions (hybrid Mamba models)
    blocks: tuple = ()               #: ((ffn: 'moe' | 'dense' | 'none', attention kind or None, blocks), ...) for
    #                                  models whose blocks hold one mixer OR one MLP (Nemotron-H); () = every layer
    #                                  is attention + MLP/MoE
    mlp_gated: bool = True           #: dense / shared-expert MLPs are gate+up+down (False: up+down, e.g. relu^2)
    block_sparse: BlockSparseSpec | None = None  #: MSA indexer (MiniMax-M3)
    moe_hidden_size: int = 0         #: width the routed experts run at (latent MoE: a shared down-projection before
    #                                  and up-projection after them); 0 = hidden_size

    @property
    def expert_hidden_size(self) -> int:
        """Input/output width of one routed expert (the latent width of a latent MoE)."""
        return self.moe_hidden_size or self.hidden_size

    # ---- structure ---------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        if self.blocks:
            return sum(n for ffn, _, n in self.blocks if ffn == "moe")
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def num_dense_layers(self) -> int:
        """Layers with a dense MLP (blocks models: the MLP blocks)."""
        if self.blocks:
            return sum(n for ffn, _, n in self.blocks if ffn == "dense")
        return self.num_layers - self.num_moe_layers

    def attention_layer_kinds(self) -> tuple:
        """((attention kind name, layers), ...) in the order the cost model sums them; one entry unless hybrid."""
        if self.layer_kinds:
            return tuple(self.layer_kinds)
        if self.mla is not None:
            return (("dsa" if self.sparse_indexer is not None else "mla", self.num_layers),)
        return (("gqa", self.num_layers),)

    @property
    def full_attention_kind(self) -> str:
        """The kind of the layers that keep a KV cache and attend over the context (the non-linear ones)."""
        return next((k for k, _ in self.attention_layer_kinds() if k not in LINEAR_KINDS),
                    self.attention_layer_kinds()[0][0])

    def layer_groups(self) -> list[tuple]:
        """[(MoE layer?, attention kind, layers)]: dense layers first, then MoE layers, each split by attention kind
        (hybrid models with dense-first layers are rejected when the config is read). Blocks models (``blocks``)
        give their blocks as they are: MoE layer? is None for a block without MLP/MoE, the kind None for a block
        without a mixer."""
        if self.blocks:
            return [({"moe": True, "dense": False, "none": None}[ffn], kind, n) for ffn, kind, n in self.blocks if n]
        out = []
        for moe_layer, layers in ((False, self.num_dense_layers), (True, self.num_moe_layers)):
            if not layers:
                continue
            kinds = self.attention_layer_kinds()
            if len(kinds) == 1:
                out.append((moe_layer, kinds[0][0], layers))
            else:
                out.extend((moe_layer, k, n) for k, n in kinds if n)
        return out

    @property
    def shared_intermediate_size(self) -> int:
        """Total intermediate width of the shared experts of one MoE layer (0 if none)."""
        return self.num_shared_experts * self.moe_intermediate_size

    # ---- parameter counts (elements) ---------------------------------------------------------
    def attention_params(self, kind: str | None = None) -> float:
        """Attention parameters of one layer of ``kind`` (None: the mean over the model's layers)."""
        if kind is None:
            kinds = self.attention_layer_kinds()
            if len(kinds) == 1 and kinds[0][1] == self.num_layers:
                return self.attention_params(kinds[0][0])
            return sum(n * self.attention_params(k) for k, n in kinds) / self.num_layers
        h = self.hidden_size
        if kind == "msa":      # GQA + the block indexer's query, key and head-weight projections
            ix = self.block_sparse
            return self.attention_params("gqa") + h * (ix.index_n_heads * ix.index_head_dim + ix.index_head_dim
                                                       + ix.index_n_heads)
        if kind == "mamba2":   # in_proj (x, z, B, C, dt), conv (+bias), A, D, dt bias, gated norm, out_proj
            mb = self.mamba
            in_proj = 2 * mb.inner + 2 * mb.n_groups * mb.state_size + mb.num_heads
            return h * in_proj + mb.conv_dim * (mb.conv_kernel + 1) + 3 * mb.num_heads + mb.inner + mb.inner * h
        if kind == "kda":    # q, k, v; low-rank forget gate (f_a, f_b) and output gate (g_a, g_b); beta; conv; o
            la = self.linear_attention
            return (h * (2 * la.key_dim + la.value_dim) + 2 * (h * la.head_v_dim + la.head_v_dim * la.key_dim)
                    + h * la.num_v_heads + la.conv_dim * la.conv_kernel + 2 * la.num_v_heads + la.value_dim * h)
        if kind == "gdn":
            la = self.linear_attention
            return (h * (2 * la.key_dim + 2 * la.value_dim) + h * 2 * la.num_v_heads + la.conv_dim * la.conv_kernel
                    + 2 * la.num_v_heads + la.head_v_dim + la.value_dim * h)
        if kind == "dsa":
            ix = self.sparse_indexer
            q_in = self.mla.q_lora_rank or h
            return (self.attention_params("mla") + q_in * ix.index_n_heads * ix.index_head_dim
                    + h * ix.index_head_dim + 2 * ix.index_head_dim + h * ix.index_n_heads)
        if kind == "mla":
            m = self.mla
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * self.num_heads * qk
            else:
                q = h * self.num_heads * qk
            kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank \
                + m.kv_lora_rank * self.num_heads * (m.qk_nope_head_dim + m.v_head_dim)
            o = self.num_heads * m.v_head_dim * h
            return q + kv + o
        q_out = self.num_heads * self.head_dim
        kv_out = 2 * self.num_kv_heads * self.head_dim
        params = h * (q_out * (2 if self.attention_output_gate else 1) + kv_out) + q_out * h
        if self.attention_bias:
            params += q_out + kv_out + h
        return params

    def dense_mlp_params(self) -> int:
        return (3 if self.mlp_gated else 2) * self.hidden_size * self.intermediate_size

    def expert_params(self) -> int:
        """One routed expert (gate, up, down; up, down without a gate)."""
        return (3 if self.mlp_gated else 2) * self.expert_hidden_size * self.moe_intermediate_size

    def router_params(self) -> int:
        """Router, plus a latent MoE's down and up projections (counted with the router: replicated per layer)."""
        latent = 2 * self.hidden_size * self.moe_hidden_size if self.moe_hidden_size else 0
        return self.hidden_size * self.num_experts + latent

    def embedding_params(self) -> tuple[int, int]:
        """(input embedding, lm_head) elements; lm_head is 0 when tied."""
        e = self.vocab_size * self.hidden_size
        return e, (0 if self.tie_word_embeddings else e)

    def param_count(self) -> int:
        """Total parameters (all experts, embeddings and lm_head; MTP layers excluded)."""
        emb, head = self.embedding_params()
        per_layer_common = self.attention_params() + 2 * self.hidden_size
        total = self.num_layers * per_layer_common + self.num_dense_layers * self.dense_mlp_params()
        total += self.num_moe_layers * (self.num_experts * self.expert_params()
                                        + self.num_shared_experts * self.expert_params()
                                        + self.router_params())
        return int(total + emb + head + self.hidden_size)

    def active_param_count(self) -> int:
        """Parameters one token touches: attention, dense MLPs, topk + shared experts, router, embeddings."""
        emb, head = self.embedding_params()
        per_layer_common = self.attention_params() + 2 * self.hidden_size
        total = self.num_layers * per_layer_common + self.num_dense_layers * self.dense_mlp_params()
        total += self.num_moe_layers * ((self.topk + self.num_shared_experts) * self.expert_params()
                                        + self.router_params())
        return int(total + emb + head + self.hidden_size)

    # ---- parallelism -------------------------------------------------------------------------
    def check_parallel(self, tp: int = 1, ep: int = 1, *, pp: int = 1, moe_tp: int | None = None) -> None:
        """Raise :class:`FrontierError` with the reason when this model cannot run at these degrees.

        Rules follow vLLM: tp divides the attention heads; KV heads are split when tp <= kv heads
        (tp must divide them) and replicated when tp > kv heads (kv heads must divide tp); ep divides
        the routed experts; moe_tp divides the expert intermediate size; pp <= layers.
        """
        for label, v in (("tp", tp), ("ep", ep), ("pp", pp), ("moe_tp", moe_tp if moe_tp is not None else 1)):
            if not isinstance(v, int) or v < 1:
                raise FrontierError(f"{label}={v!r} must be a positive whole number")
        where = f"{self.name}"
        if self.num_heads % tp:
            raise FrontierError(f"tp={tp} does not divide {self.num_heads} attention heads of {where}")
        if self.mla is None:
            kv = self.num_kv_heads
            if tp <= kv and kv % tp:
                raise FrontierError(f"tp={tp} does not divide {kv} KV heads of {where}")
            if tp > kv and tp % kv:
                raise FrontierError(f"tp={tp} is not a multiple of {kv} KV heads of {where} "
                                    "(KV heads can only be replicated a whole number of times)")
        mb = self.mamba
        if mb is not None and (mb.num_heads % tp or mb.n_groups % tp):
            raise FrontierError(f"tp={tp} does not divide the {mb.num_heads} heads / {mb.n_groups} groups of the "
                                f"Mamba2 layers of {where}")
        la = self.linear_attention
        if la is not None and (la.num_k_heads % tp or la.num_v_heads % tp):
            raise FrontierError(f"tp={tp} does not divide the {la.num_k_heads} key / {la.num_v_heads} value heads of "
                                f"the linear-attention layers of {where}")
        if self.num_dense_layers and self.intermediate_size % tp:
            raise FrontierError(f"tp={tp} does not divide the MLP intermediate size {self.intermediate_size} of {where}")
        if pp > self.num_layers:
            raise FrontierError(f"pp={pp} exceeds the {self.num_layers} layers of {where}")
        if not self.is_moe:
            if ep > 1:
                raise FrontierError(f"ep={ep} needs an MoE model; {where} is dense")
            return
        if self.num_experts % ep:
            raise FrontierError(f"ep={ep} does not divide {self.num_experts} experts of {where}")
        mtp = self._moe_tp(tp, ep, moe_tp)
        if self.moe_intermediate_size % mtp:
            raise FrontierError(f"moe_tp={mtp} does not divide the expert intermediate size "
                                f"{self.moe_intermediate_size} of {where}")

    @staticmethod
    def _moe_tp(tp: int, ep: int, moe_tp: int | None) -> int:
        """Default expert TP: tp // ep (vLLM: TP without EP shards experts by tp; with EP, moe_tp = 1)."""
        if moe_tp is not None:
            return moe_tp
        return max(1, tp // ep)

    def heads_per_gpu(self, tp: int = 1) -> tuple[int, int]:
        """(query heads, KV heads) on one GPU under tensor parallelism ``tp`` (KV heads replicated if tp > kv)."""
        q = self.num_heads // tp if self.num_heads % tp == 0 else math.ceil(self.num_heads / tp)
        if self.mla is not None:
            return q, q
        return q, max(1, math.ceil(self.num_kv_heads / tp))

    # ---- memory (bytes) ----------------------------------------------------------------------
    def weight_bytes_per_gpu(self, dtype: str | None = None, *, tp: int = 1, pp: int = 1, ep: int = 1,
                             moe_tp: int | None = None, expert_dtype: str | None = None) -> float:
        """Weight bytes on the most loaded GPU.

        Attention and dense MLPs are sharded by ``tp``; routed experts by ``ep`` (whole experts) and
        ``moe_tp`` (each expert's intermediate dim; default tp // ep); shared experts by tp; embeddings
        and lm_head by tp (vocab-parallel); layers split into ``pp`` contiguous stages (the first stage
        holds the embedding, the last the lm_head). Router weights, norms are replicated.

        ``dtype`` overrides the format of the quantizable linear weights (attention, MLPs, experts);
        None uses the model's own (``weight_dtype`` / ``dense_weight_dtype``). Embeddings, lm_head,
        router and norms stay in bf16 unless ``dtype`` is itself an unquantized float (fp32/fp16/bf16).
        ``expert_dtype`` overrides the routed experts' format on top of that (e.g. int4 experts with bf16
        attention, as in Kimi-K2.5's checkpoint).
        """
        if dtype is not None:
            dtype = normalize_dtype(dtype, where="weight dtype")
            expert_b = dense_b = DTYPE_BYTES[dtype]
            other_b = DTYPE_BYTES[dtype] if dtype in ("fp32", "fp16", "bf16") else 2.0
        else:
            expert_b = DTYPE_BYTES[self.weight_dtype]
            dense_b = DTYPE_BYTES[self.dense_weight_dtype or self.weight_dtype]
            other_b = DTYPE_BYTES[self.weight_dtype] if self.weight_dtype in ("fp32", "fp16") else 2.0
        if expert_dtype is not None:
            expert_b = DTYPE_BYTES[normalize_dtype(expert_dtype, where="expert weight dtype")]
        mtp = self._moe_tp(tp, ep, moe_tp)
        attn = self.attention_params() / tp * dense_b + 2 * self.hidden_size * other_b
        dense_layer = attn + self.dense_mlp_params() / tp * dense_b
        moe_layer = attn
        if self.is_moe:
            local_experts = math.ceil(self.num_experts / ep)
            moe_layer += local_experts * self.expert_params() / mtp * expert_b
            moe_layer += self.num_shared_experts * self.expert_params() / tp * dense_b
            moe_layer += self.router_params() * other_b
        emb, head = self.embedding_params()
        emb_b = math.ceil(self.vocab_size / tp) * self.hidden_size * other_b
        head_b = emb_b if head else 0.0
        # layer i is dense if i < num_dense_layers (dense-first layout)
        bounds = _pp_bounds(self.num_layers, pp)
        worst = 0.0
        if self.blocks:   # blocks mix in a pattern: each stage holds its share of the mean block
            mlp = (self.num_dense_layers * (dense_layer - attn) + self.num_moe_layers * (moe_layer - attn))
            per_block = attn + mlp / self.num_layers
        for stage, (lo, hi) in enumerate(bounds):
            n_dense = max(0, min(hi, self.num_dense_layers) - lo)
            n_moe = (hi - lo) - n_dense
            b = n_dense * dense_layer + n_moe * moe_layer
            if self.blocks:
                b = (hi - lo) * per_block
            if stage == 0:
                b += emb_b
            if stage == pp - 1:
                b += head_b + self.hidden_size * other_b
                if pp > 1 and not head:      # tied embeddings: the last stage needs its own copy
                    b += emb_b
            worst = max(worst, b)
        return float(worst)

    # ---- GEMMs -------------------------------------------------------------------------------
    def layer_gemms(self, tp: int = 1, *, moe_layer: bool, mla_absorbed: bool = False) -> list[GemmShape]:
        """GEMMs one layer issues on one GPU (excluding the attention core and the routed experts).

        ``moe_layer`` picks an MoE layer (router + shared experts) or a dense layer (gate_up + down).
        For MLA, ``mla_absorbed`` gives the decode form (W_UK / W_UV absorbed into per-head batched
        GEMMs) instead of the prefill form (kv_b_proj expanding the latent).
        """
        if moe_layer and not self.is_moe:
            raise FrontierError(f"{self.name} has no MoE layers")
        if not moe_layer and self.num_dense_layers == 0:
            raise FrontierError(f"{self.name} has no dense MLP layers")
        return (self.attention_gemms(tp, self.full_attention_kind, mla_absorbed=mla_absorbed)
                + self.ffn_gemms(tp, moe_layer=moe_layer))

    def attention_gemms(self, tp: int = 1, kind: str | None = None, *, mla_absorbed: bool = False) -> list[GemmShape]:
        """The projection GEMMs of one attention layer of ``kind`` (default: the full-attention kind) on one GPU."""
        kind = kind or self.full_attention_kind
        h = self.hidden_size
        heads, kv_heads = self.heads_per_gpu(tp)
        out: list[GemmShape] = []
        if kind == "mamba2":   # column-parallel in_proj (z, x, B, C, dt), row-parallel out_proj
            mb = self.mamba
            inner, groups, nh = mb.inner // tp, mb.n_groups // tp, mb.num_heads // tp
            return [GemmShape("in_proj", 2 * inner + 2 * groups * mb.state_size + nh, h),
                    GemmShape("out_proj", h, inner)]
        if kind == "kda":    # vLLM's KimiDeltaAttention: column-parallel q/k/v, f_b, g_b, b; replicated f_a, g_a
            la = self.linear_attention
            kd, vd, nv, r = la.key_dim // tp, la.value_dim // tp, la.num_v_heads // tp, la.head_v_dim
            return [GemmShape("qkv_proj", 2 * kd + vd, h), GemmShape("f_a_proj", r, h), GemmShape("f_b_proj", kd, r),
                    GemmShape("g_a_proj", r, h), GemmShape("g_b_proj", vd, r), GemmShape("b_proj", nv, h),
                    GemmShape("o_proj", h, vd)]
        if kind == "gdn":
            la = self.linear_attention
            kd, vd, nv = la.key_dim // tp, la.value_dim // tp, la.num_v_heads // tp
            return [GemmShape("in_proj_qkvz", 2 * kd + 2 * vd, h), GemmShape("in_proj_ba", 2 * nv, h),
                    GemmShape("out_proj", h, vd)]
        if kind in ("mla", "dsa"):
            m = self.mla
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                out.append(GemmShape("q_a_proj", m.q_lora_rank, h))
                out.append(GemmShape("q_b_proj", heads * qk, m.q_lora_rank))
            else:
                out.append(GemmShape("q_proj", heads * qk, h))
            out.append(GemmShape("kv_a_proj", m.kv_lora_rank + m.qk_rope_head_dim, h))
            if mla_absorbed:
                out.append(GemmShape("w_uk_bmm", m.kv_lora_rank, m.qk_nope_head_dim, count=heads))
                out.append(GemmShape("w_uv_bmm", m.v_head_dim, m.kv_lora_rank, count=heads))
            else:
                out.append(GemmShape("kv_b_proj", heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank))
            out.append(GemmShape("o_proj", h, heads * m.v_head_dim))
            if kind == "dsa":   # the indexer's query, key and head-weight projections
                ix = self.sparse_indexer
                out.append(GemmShape("indexer_wq_b", ix.index_n_heads * ix.index_head_dim, m.q_lora_rank or h))
                out.append(GemmShape("indexer_wk", ix.index_head_dim, h))
                out.append(GemmShape("indexer_weights_proj", ix.index_n_heads, h))
        else:
            gate = 2 if self.attention_output_gate else 1
            out.append(GemmShape("qkv_proj", (heads * gate + 2 * kv_heads) * self.head_dim, h))
            out.append(GemmShape("o_proj", h, heads * self.head_dim))
            if kind == "msa":   # the block indexer's projections (replicated: 4 heads)
                ix = self.block_sparse
                out.append(GemmShape("indexer_q_proj", ix.index_n_heads * ix.index_head_dim, h))
                out.append(GemmShape("indexer_k_proj", ix.index_head_dim, h))
                out.append(GemmShape("indexer_weights_proj", ix.index_n_heads, h))
        return out

    def ffn_gemms(self, tp: int = 1, *, moe_layer: bool) -> list[GemmShape]:
        """The GEMMs of one layer's MLP (dense) or its router and shared experts (MoE) on one GPU."""
        h = self.hidden_size
        out: list[GemmShape] = []
        up = 2 if self.mlp_gated else 1
        if moe_layer is None:      # a block without MLP (blocks models)
            return out
        if moe_layer:
            out.append(GemmShape("router", self.num_experts, h))
            if self.moe_hidden_size:      # latent MoE: into the experts' width and back
                out.append(GemmShape("moe_latent_down", self.moe_hidden_size, h))
                out.append(GemmShape("moe_latent_up", h, self.moe_hidden_size))
            if self.num_shared_experts:
                inter = self.shared_intermediate_size // tp
                out.append(GemmShape("shared_expert_gate_up", up * inter, h))
                out.append(GemmShape("shared_expert_down", h, inter))
        else:
            inter = self.intermediate_size // tp
            out.append(GemmShape("gate_up_proj", up * inter, h))
            out.append(GemmShape("down_proj", h, inter))
        return out

    def lm_head_gemm(self, tp: int = 1) -> GemmShape:
        """The vocab projection on one GPU (vocab-parallel: n = ceil(vocab / tp))."""
        return GemmShape("lm_head", math.ceil(self.vocab_size / tp), self.hidden_size)

    def expert_gemms(self, moe_tp: int = 1) -> list[GemmShape]:
        """The two GEMMs of one routed expert on one GPU (gate_up fused, down), intermediate split by moe_tp."""
        inter = self.moe_intermediate_size // moe_tp
        return [GemmShape("expert_gate_up", (2 if self.mlp_gated else 1) * inter, self.expert_hidden_size),
                GemmShape("expert_down", self.expert_hidden_size, inter)]


def _pp_bounds(num_layers: int, pp: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) layer ranges per pipeline stage; earlier stages take the remainder."""
    base, rem = divmod(num_layers, pp)
    bounds, lo = [], 0
    for s in range(pp):
        hi = lo + base + (1 if s < rem else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


# ---- loading ---------------------------------------------------------------------------------

def list_presets() -> list[str]:
    """Short names of the bundled presets (pass any of them to :func:`load_model`)."""
    return sorted(set(PRESETS.values()), key=str.lower)


def _preset_index() -> dict[str, str]:
    """Lower-cased spelling -> preset file stem: short name, HF id, ``org--name``, aliases."""
    idx: dict[str, str] = {}
    for hf_id, stem in PRESETS.items():
        idx[stem.lower()] = stem
        idx[hf_id.lower()] = stem
        idx[hf_id.replace("/", "--").lower()] = stem
    for alias, hf_id in _PRESET_ALIASES.items():
        idx[alias.lower()] = PRESETS[hf_id]
        idx[alias.replace("/", "--").lower()] = PRESETS[hf_id]
    return idx


def resolve_preset(name: str) -> Path | None:
    """Path of the preset file for a name in any accepted spelling, or None."""
    stem = _preset_index().get(str(name).strip().lower())
    return DATA_DIR / f"{stem}.json" if stem else None


def load_model(name_or_path: str) -> ModelSpec:
    """A :class:`ModelSpec` from a preset name / HF id, a ``config.json`` path, or a folder holding one.

    Raises :class:`InputError` (naming file and field) for malformed configs, and
    :class:`FrontierError` listing the supported architectures for models this project cannot model.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "config.json"
        if not path.exists():
            raise InputError("folder has no config.json", path=str(path.parent),
                             fix="pass the config.json of a Hugging Face model or a preset name")
        name = path.parent.name
    elif path.is_file():
        name = path.stem.removesuffix("_config") if path.stem not in ("config",) else path.parent.name
    else:
        preset = resolve_preset(text)
        if preset is None:
            raise FrontierError(f"unknown model '{text}': not a file and not a preset; presets: "
                                f"{', '.join(list_presets())} (or pass a Hugging Face config.json path)")
        path, name = preset, preset.stem
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path=str(path),
                         fix="pass a Hugging Face config.json") from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path=str(path)) from None
    if not isinstance(cfg, dict):
        raise InputError("expected a JSON object", path=str(path), fix="pass a Hugging Face config.json")
    return spec_from_config(cfg, name=name, path=str(path))


def spec_from_config(cfg: dict, *, name: str, path: str = "<config>") -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed Hugging Face config dict."""
    archs = cfg.get("architectures")
    if not archs or not isinstance(archs, list):
        raise InputError("missing 'architectures' list", path=path, field="architectures",
                         fix=f"set it to one of {', '.join(SUPPORTED_ARCHITECTURES)}")
    arch = str(archs[0])
    if arch not in SUPPORTED_ARCHITECTURES:
        raise FrontierError(f"{path}: architecture '{arch}' is not supported (decoder-only text LLMs only); "
                            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
    if arch in _HYBRID_GDN | _KIMI_LINEAR and isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], "architectures": archs,
               "tie_word_embeddings": cfg.get("tie_word_embeddings", cfg["text_config"].get("tie_word_embeddings")),
               **({"quantization_config": cfg["quantization_config"]} if "quantization_config" in cfg else {})}
    if isinstance(cfg.get("text_config"), dict):   # defensive: multimodal wrappers are not supported
        raise FrontierError(f"{path}: multimodal configs (text_config) are not supported")

    def req(key: str, *alts: str) -> int:
        for k in (key, *alts):
            if k in cfg and cfg[k] is not None:
                return _pos_int(cfg[k], path, k)
        raise InputError("missing required field", path=path, field=key)

    def opt(key: str, default: int = 0, *alts: str) -> int:
        for k in (key, *alts):
            if k in cfg and cfg[k] is not None:
                return _pos_int(cfg[k], path, k, allow_zero=True)
        return default

    hidden = req("hidden_size")
    layers = req("num_hidden_layers")
    vocab = req("vocab_size")
    heads = req("num_attention_heads")
    kv_heads = opt("num_key_value_heads", heads)
    if kv_heads == 0:
        raise InputError("must be positive", path=path, field="num_key_value_heads")
    if heads % kv_heads:
        raise InputError(f"{heads} attention heads are not a multiple of {kv_heads} KV heads", path=path,
                         field="num_key_value_heads")
    head_dim = opt("head_dim", 0) or (hidden // heads)
    if arch in _HYBRID_GDN and cfg.get("num_experts"):   # all-MoE: no dense intermediate size in the config
        inter = opt("intermediate_size", 0) or req("moe_intermediate_size")
    else:
        inter = req("intermediate_size")
    kw: dict = {}

    mla = None
    if arch in _HYBRID_GDN:
        kw.update(_hybrid_gdn(cfg, layers, inter, path, opt, req))
    if arch in _HYBRID_MAMBA:
        kw.update(_hybrid_mamba(cfg, layers, inter, path, opt, req))
    if arch in _MSA:
        kw.update(_minimax_msa(cfg, layers, path, opt, req))
        inter = kw.pop("intermediate_size")
    if arch in _KIMI_LINEAR:
        kw.update(_kimi_linear(cfg, layers, hidden, path, opt, req))
        mla = MLASpec(q_lora_rank=opt("q_lora_rank", 0) or None, kv_lora_rank=req("kv_lora_rank"),
                      qk_nope_head_dim=req("qk_nope_head_dim"), qk_rope_head_dim=req("qk_rope_head_dim"),
                      v_head_dim=req("v_head_dim"))
        kv_heads = heads
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    if arch in _MLA or arch in _DSA:
        q_lora = cfg.get("q_lora_rank")
        mla = MLASpec(
            q_lora_rank=_pos_int(q_lora, path, "q_lora_rank") if q_lora is not None else None,
            kv_lora_rank=req("kv_lora_rank"), qk_nope_head_dim=req("qk_nope_head_dim"),
            qk_rope_head_dim=req("qk_rope_head_dim"), v_head_dim=req("v_head_dim"))
        kv_heads = heads
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        n_exp = opt("n_routed_experts", 0)
        if n_exp:
            if opt("moe_layer_freq", 1) != 1:
                raise InputError("only moe_layer_freq = 1 is supported", path=path, field="moe_layer_freq")
            kw.update(num_experts=n_exp, topk=req("num_experts_per_tok"),
                      moe_intermediate_size=req("moe_intermediate_size"),
                      num_shared_experts=opt("n_shared_experts", 0),
                      first_dense_layers=opt("first_k_dense_replace", 0), expert_groups=opt("n_group", 0))
            if kw["expert_groups"] and n_exp % kw["expert_groups"]:
                raise InputError(f"{kw['expert_groups']} expert groups do not divide {n_exp} routed experts",
                                 path=path, field="n_group")
        if arch in _DSA:
            from_cfg = {k: req(k) for k in ("index_n_heads", "index_head_dim", "index_topk")}
            kw["sparse_indexer"] = SparseIndexerSpec(**from_cfg)
    elif arch in _MOE:
        n_exp = req("num_local_experts", "num_experts")
        topk = req("num_experts_per_tok", "experts_per_token")
        moe_inter = opt("moe_intermediate_size", 0) or inter
        dense_first = 0
        if arch == "Qwen3MoeForCausalLM":
            mlp_only = cfg.get("mlp_only_layers") or []
            step = opt("decoder_sparse_step", 1) or 1
            dense_idx = {int(i) for i in mlp_only} | {i for i in range(layers) if (i + 1) % step}
            dense_first = len(dense_idx)   # counted as dense-first layers: position does not matter for cost
        if arch == "MiniMaxM2ForCausalLM" and opt("shared_intermediate_size", 0):
            raise InputError("shared experts of MiniMax-M2 are not supported", path=path,
                             field="shared_intermediate_size")
        kw.update(num_experts=n_exp, topk=topk, moe_intermediate_size=moe_inter, first_dense_layers=dense_first)
        if topk > n_exp:
            raise InputError(f"{topk} experts per token exceed {n_exp} experts", path=path,
                             field="num_experts_per_tok")
    if kw.get("first_dense_layers", 0) > layers:
        raise InputError("more dense layers than layers", path=path, field="first_k_dense_replace")

    window, window_layers = _sliding_window(cfg, arch, layers, path)
    weight_dtype, dense_dtype = _weight_dtypes(cfg, path)
    return ModelSpec(
        name=name, architecture=arch, hidden_size=hidden, num_layers=layers, vocab_size=vocab,
        num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, intermediate_size=inter, mla=mla,
        sliding_window=window, sliding_window_layers=window_layers,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        weight_dtype=weight_dtype, dense_weight_dtype=dense_dtype,
        attention_bias=bool(cfg.get("attention_bias", False)) or arch == "Qwen2ForCausalLM",
        max_position_embeddings=opt("max_position_embeddings", 0), **kw)


def _hybrid_gdn(cfg: dict, layers: int, inter: int, path: str, opt, req) -> dict:
    """ModelSpec fields of a gated-DeltaNet hybrid (Qwen3.5 / Qwen3-Next): linear-attention dimensions, the
    layer pattern (``layer_types``, else every ``full_attention_interval``-th layer is full attention), experts."""
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        types = types[:layers]
        bad = sorted({str(t) for t in types} - {"linear_attention", "full_attention"})
        if bad or len(types) != layers:
            raise InputError(f"layer_types must list {layers} of linear_attention / full_attention"
                             + (f", got {bad}" if bad else ""), path=path, field="layer_types")
        full = sum(1 for t in types if t == "full_attention")
    else:
        every = req("full_attention_interval")
        full = sum(1 for i in range(layers) if (i + 1) % every == 0)
    ssm = str(cfg.get("mamba_ssm_dtype") or "float32").lower()
    la = LinearAttentionSpec(
        num_k_heads=req("linear_num_key_heads"), num_v_heads=req("linear_num_value_heads"),
        head_k_dim=req("linear_key_head_dim"), head_v_dim=req("linear_value_head_dim"),
        conv_kernel=req("linear_conv_kernel_dim"), state_bytes=4 if ssm in ("float32", "fp32") else 2)
    out = {"linear_attention": la, "layer_kinds": (("gqa", full), ("gdn", layers - full)),
           "attention_output_gate": bool(cfg.get("attn_output_gate", True))}
    n_exp = opt("num_experts", 0)
    if n_exp:
        moe_inter = req("moe_intermediate_size")
        shared = opt("shared_expert_intermediate_size", 0)
        if shared and shared != moe_inter:
            raise InputError(f"a shared expert of {shared} differs from the routed experts' {moe_inter}; only "
                             "equal sizes are supported", path=path, field="shared_expert_intermediate_size")
        if cfg.get("mlp_only_layers") or opt("decoder_sparse_step", 1) not in (0, 1):
            raise InputError("dense layers in a hybrid linear-attention model are not supported", path=path,
                             field="mlp_only_layers")
        out.update(num_experts=n_exp, topk=req("num_experts_per_tok"), moe_intermediate_size=moe_inter,
                   num_shared_experts=1 if shared else 0, shared_expert_gate=bool(shared))
    return out


#: Nemotron-H ``hybrid_override_pattern`` characters -> (MLP of the block, mixer kind of the block)
_NEMOTRON_BLOCKS = {"M": ("none", "mamba2"), "*": ("none", "gqa"), "E": ("moe", None), "-": ("dense", None)}


def _hybrid_mamba(cfg: dict, layers: int, inter: int, path: str, opt, req) -> dict:
    """ModelSpec fields of a hybrid Mamba2 model (Nemotron-H, Nemotron-3): each of the ``num_hidden_layers``
    blocks is one Mamba2 mixer (``M``), one attention layer (``*``), one MoE (``E``) or one MLP (``-``), in the
    order of ``hybrid_override_pattern`` (transformers' NemotronH modelling); MLPs are relu^2 up+down (no gate)."""
    pattern = cfg.get("hybrid_override_pattern")
    if not isinstance(pattern, str) or len(pattern) != layers or set(pattern) - set(_NEMOTRON_BLOCKS):
        raise InputError(f"must be a string of {layers} block letters from {''.join(_NEMOTRON_BLOCKS)} "
                         f"(M mamba, * attention, E MoE, - MLP)", path=path, field="hybrid_override_pattern")
    counts = {c: pattern.count(c) for c in _NEMOTRON_BLOCKS}
    ssm = str(cfg.get("mamba_ssm_cache_dtype") or "float32").lower()
    mb = Mamba2Spec(num_heads=req("mamba_num_heads"), head_dim=req("mamba_head_dim"), state_size=req("ssm_state_size"),
                    n_groups=req("n_groups"), conv_kernel=req("conv_kernel"), chunk_size=opt("chunk_size", 256),
                    state_bytes=4 if ssm in ("float32", "fp32") else 2)
    out = {"mamba": mb, "mlp_gated": False,
           "layer_kinds": tuple((k, counts[c]) for c, k in (("*", "gqa"), ("M", "mamba2")) if counts[c]),
           "blocks": tuple((*_NEMOTRON_BLOCKS[c], counts[c]) for c in "M*E-" if counts[c])}
    if counts["E"]:
        moe_inter = req("moe_intermediate_size")
        shared = opt("moe_shared_expert_intermediate_size", 0)
        if shared % moe_inter:
            raise InputError(f"a shared expert width of {shared} is not a multiple of the routed experts' "
                             f"{moe_inter}", path=path, field="moe_shared_expert_intermediate_size")
        out.update(num_experts=req("n_routed_experts"), topk=req("num_experts_per_tok"),
                   moe_intermediate_size=moe_inter, num_shared_experts=shared // moe_inter,
                   moe_hidden_size=opt("moe_latent_size", 0))    # latent MoE (Nemotron-3-Super): routed experts only
    return out


def _layer_flags(cfg: dict, key: str, layers: int, path: str) -> list[int]:
    """A per-layer 0/1 list of the config (e.g. ``moe_layer_freq``, ``sparse_attention_freq``)."""
    v = cfg.get(key)
    if not isinstance(v, list) or len(v) != layers or set(v) - {0, 1}:
        raise InputError(f"must list 0 or 1 for each of the {layers} layers", path=path, field=key)
    return [int(x) for x in v]


def _minimax_msa(cfg: dict, layers: int, path: str, opt, req) -> dict:
    """ModelSpec fields of MiniMax-M3: per layer, full GQA or MSA (``sparse_attention_config.sparse_attention_freq``)
    and a dense MLP (``dense_intermediate_size``) or MoE (``moe_layer_freq``), routed experts plus shared ones."""
    sac = cfg.get("sparse_attention_config")
    if not isinstance(sac, dict):
        raise InputError("missing sparse_attention_config", path=path, field="sparse_attention_config")
    sparse = _layer_flags(sac, "sparse_attention_freq", layers, f"{path} sparse_attention_config")
    moe = _layer_flags(cfg, "moe_layer_freq", layers, path)
    ix = BlockSparseSpec(*(_pos_int(sac.get(k), path, f"sparse_attention_config.{k}") for k in (
        "sparse_num_index_heads", "sparse_index_dim", "sparse_topk_blocks", "sparse_block_size")))
    moe_inter = req("moe_intermediate_size")
    shared = opt("shared_intermediate_size", 0) * opt("n_shared_experts", 1 if cfg.get("shared_intermediate_size") else 0)
    if shared % moe_inter:
        raise InputError(f"shared experts of {shared} are not a multiple of the routed experts' {moe_inter}",
                         path=path, field="shared_intermediate_size")
    combos = [(("moe" if m else "dense"), ("msa" if sp else "gqa")) for m, sp in zip(moe, sparse)]
    blocks = tuple((f, k, combos.count((f, k))) for f, k in dict.fromkeys(combos))
    return {"block_sparse": ix, "blocks": blocks, "intermediate_size": req("dense_intermediate_size"),
            "layer_kinds": tuple((k, n) for k, n in (("gqa", len(sparse) - sum(sparse)), ("msa", sum(sparse))) if n),
            "num_experts": req("num_local_experts"), "topk": req("num_experts_per_tok"),
            "moe_intermediate_size": moe_inter, "num_shared_experts": shared // moe_inter}


def _kimi_linear(cfg: dict, layers: int, hidden: int, path: str, opt, req) -> dict:
    """ModelSpec fields of a Kimi Delta Attention hybrid (Kimi-Linear, Kimi-K3): ``linear_attn_config`` lists the
    KDA and the full-attention (MLA) layers, 1-based as in the checkpoints' modelling code; every layer past
    ``first_k_dense_replace`` is MoE; ``routed_expert_hidden_size`` below ``hidden_size`` is a latent MoE."""
    lac = cfg.get("linear_attn_config")
    if not isinstance(lac, dict):
        raise InputError("missing linear_attn_config", path=path, field="linear_attn_config")
    kda, full = lac.get("kda_layers"), lac.get("full_attn_layers")
    ok = (isinstance(kda, list) and isinstance(full, list) and sorted(map(int, kda + full)) == list(range(1, layers + 1)))
    if not ok:
        raise InputError(f"kda_layers and full_attn_layers must split the layers 1..{layers} between them",
                         path=path, field="linear_attn_config.kda_layers")
    heads, dim = (_pos_int(lac.get(k), path, f"linear_attn_config.{k}") for k in ("num_heads", "head_dim"))
    conv = _pos_int(lac.get("short_conv_kernel_size", 4), path, "linear_attn_config.short_conv_kernel_size")
    la = LinearAttentionSpec(num_k_heads=heads, num_v_heads=heads, head_k_dim=dim, head_v_dim=dim, conv_kernel=conv)
    out = {"linear_attention": la, "layer_kinds": tuple((k, n) for k, n in (("mla", len(full)), ("kda", len(kda))) if n)}
    n_exp = opt("num_experts", 0)
    if n_exp:
        if opt("moe_layer_freq", 1) != 1:
            raise InputError("only moe_layer_freq = 1 is supported", path=path, field="moe_layer_freq")
        latent = opt("routed_expert_hidden_size", 0)
        out.update(num_experts=n_exp, topk=req("num_experts_per_token"), moe_intermediate_size=req("moe_intermediate_size"),
                   num_shared_experts=opt("num_shared_experts", 0), first_dense_layers=opt("first_k_dense_replace", 0),
                   moe_hidden_size=latent if 0 < latent < hidden else 0)
    return out


def _pos_int(value, path: str, field: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InputError(f"expected a whole number, got {value!r}", path=path, field=field)
    if int(value) < 0 or (int(value) == 0 and not allow_zero):
        raise InputError(f"must be positive, got {value!r}", path=path, field=field)
    return int(value)


def _sliding_window(cfg: dict, arch: str, layers: int, path: str) -> tuple[int, int]:
    """(window tokens, layers using it). gpt-oss lists ``layer_types``; Qwen gates it by use_sliding_window."""
    win = cfg.get("sliding_window")
    if not win:
        return 0, 0
    win = _pos_int(win, path, "sliding_window")
    if cfg.get("use_sliding_window") is False:
        return 0, 0
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        n = sum(1 for t in types[:layers] if t == "sliding_attention")
        return (win, n) if n else (0, 0)
    if arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM"):
        n = max(0, layers - int(cfg.get("max_window_layers", layers)))
        return (win, n) if n else (0, 0)
    if win >= int(cfg.get("max_position_embeddings", 0) or 0) > 0:
        return 0, 0                 # a window as long as the context is no window
    return win, layers


def _weight_dtypes(cfg: dict, path: str) -> tuple[str, str | None]:
    """(weight_dtype, dense_weight_dtype) from quantization_config, else torch_dtype."""
    q = cfg.get("quantization_config")
    if isinstance(q, dict) and q:
        method = str(q.get("quant_method", "")).lower()
        if method == "fp8":
            return ("fp8_block" if q.get("weight_block_size") else "fp8"), None
        if method == "mxfp4":
            skipped = " ".join(map(str, q.get("modules_to_not_convert") or []))
            return "mxfp4", ("bf16" if "self_attn" in skipped else None)
        if method == "compressed-tensors" and "mxfp4" in str(q.get("format", "")).lower():
            skipped = " ".join(map(str, q.get("ignore") or []))     # attention and dense MLPs left in bf16
            return "mxfp4", ("bf16" if "self_attn" in skipped else None)
        if method in ("awq", "gptq", "compressed-tensors") and q.get("bits") in (4, 8):
            return ("int4_wo" if q["bits"] == 4 else "int8"), None
        if method in ("modelopt",) and "fp4" in str(q.get("quant_algo", "")).lower():
            return "nvfp4", None
        raise InputError(f"unsupported quant_method '{q.get('quant_method')}'", path=path,
                         field="quantization_config.quant_method",
                         fix="supported: fp8 (per-tensor or block), mxfp4, awq/gptq 4- or 8-bit")
    td = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    try:
        return normalize_dtype(str(td), where=f"{path} torch_dtype"), None
    except FrontierError:
        raise InputError(f"unknown torch_dtype {td!r}", path=path, field="torch_dtype") from None
