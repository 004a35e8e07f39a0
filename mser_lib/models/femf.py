"""FEMF: frequency-aware experts with multi-stage fusion (paper 000, sections 3.2 to 3.6).

The model, top to bottom (equation numbers are the paper's)::

    x_m --P_m--> h_m --E^s, E^u_m--> x_m^s, x_m^u                 3.2 disentanglement (eq. 1-7)
    x_m^u --FourierLayer--> x_m^low, x_m^high                    3.3 DFT split (eq. 8)
    stage "experts": expert e_{m,f} on x_m^f -> y_m^f            eq. 9-10 (eq. 27 summed)
    stage "full":    every band of every modality through all experts of that band (eq. 11),
                     soft router MLP(x_m^f, x_t^f) -> softmax (eq. 12-14), R_m = a X^low + (1-a) X^high (15)
    R_m --T layers of two-step cross-attention + FFN--> R_m      3.4 interaction (eq. 16-19)
    heads y_m, y_joint, softmax(MLP(z)) -> y; y_shared, L_align  3.5 hierarchical prediction (eq. 20-25)
    L_total = L_dis + L_train + L_align + L_task                 3.6 (eq. 26-28), every weight configurable

Choices where the paper is silent or cannot be taken literally (each is documented where it is made):

* Input projection. E^s is shared across modalities whose widths differ, so each modality is first
  projected to ``hidden`` by a per-modality linear layer ``P_m`` (the reference code does the same).
  The decoders D_m reconstruct the input features x_m (eq. 5: "the original multi-modal
  representation"), standardised per feature: as they are when the loader standardised them,
  else with the train split's mean and std (:meth:`FEMF.prepare`), so L_rec and L_cyc do not grow
  with a feature's unit (raw bc-LSTM audio carries pitch in Hz; the paper is silent on scale). The
  cycle path re-encodes x̂_m, back in the input's units, with ``E^u_m(P_m(.))`` (eq. 6).
* L_orth (eq. 3) as written, a raw inner product, is unbounded below. We use the squared cosine
  ``cos(x_m^s, x_m^u)^2``: in [0, 1] and zero exactly when the shared and private codes are
  orthogonal (the reference minimises the signed cosine towards -1, docs/reference-differences.md row 3).
* L_cyc (eq. 6) uses the squared error averaged over channels (eq. 6's squared norm divided by the
  width, a constant absorbed by its weight), summed over audio and vision as written.
* Eq. 20's "sigmoid-activated projection" cannot reach labels in [-3, 3]; heads are plain linear.
* Layouts. Position layout (one sample = a video, one label per utterance): all modalities share
  the utterance axis; experts, router, interaction and heads act per position and attention is
  non-causal over the utterances. Sequence layout (one label per sample; modalities may have
  different lengths): experts and interaction run over each modality's own frames, the router's
  text anchor is the pooled text private feature (the pooled high band of any sequence is 0), the
  decoders of audio and vision get the pooled text-shared vector, L_sim compares pooled shared
  vectors, and the hierarchical heads act on the pooled interaction outputs.
* Missing modalities (all-False mask rows): excluded from every loss term, masked as attention keys
  (a branch with no keys skips that cross-attention step), and their heads get no fusion weight
  (eq. 22's softmax is taken over the present modalities and the joint head).
* Stage 2 with frozen experts (``freeze_experts=True``, the paper): the paper freezes the experts'
  *parameters* only, so by default (``expert_grad_to_inputs=True``, the ``paper`` preset) autograd
  runs through the frozen experts: the task loss and L_train (eq. 10 on each modality's own
  experts, kept in stage 2) reach the input projections and private encoders through them, while
  the expert parameters get no gradient. ``expert_grad_to_inputs=False`` is the named speed option:
  the frozen experts run under ``torch.no_grad`` and the private encoders then learn in stage 2
  through the router, L_dis and L_align only (the ``quick`` preset uses it, for CPU speed).
* Stage 1 (``set_stage("experts")``) trains the input projections, the disentanglement module and
  the experts on L_train (+ L_dis unless ``dis_in_expert_stage=False``); its ``prediction`` is the
  mean of the present experts' predictions, so model selection on VALID measures the experts.

Switches (Tables 2-4) remove modules, not weights: ``use_dtm=False`` keeps only the input
projections (x_m^u = P_m(x_m); no E^s, E^u, decoders, L_sim/L_orth/L_rec/L_cyc, and no L_align since
there are no shared features); ``use_fae=False`` feeds x_m^u straight to the interaction (no Fourier
layer, experts, routers, L_train, single stage); ``use_mim=False`` feeds R_m straight to the heads;
``use_hpm=False`` predicts with the joint head only (eq. 21); ``use_l_align`` removes the shared
head, ``use_l_rec``/``use_l_cyc`` the decoders they alone need; ``modalities`` (e.g. ``"ta"``) builds
every module for that subset only (M experts per band, M-1 key steps per interaction branch).

Speed: the mechanism lives in :mod:`mser_lib.models.packing`, so this file reads against the paper.
All computation runs on real tokens only: each modality's tokens are packed (a
:class:`~mser_lib.models.packing.Segment`: ``(N_m, H)`` tokens, samples sorted by length), and
``segs[m].gather`` / ``.scatter`` / ``.mean`` move between tokens, padded grids and per-sample means.
The 2 x M experts (eq. 9) and the 2 x M routers (eq. 12-13) are
:class:`~mser_lib.models.packing.StackedExperts` / :class:`~mser_lib.models.packing.StackedRouters`:
stacked weights run with one ``torch.baddbmm`` per layer over a leading expert axis (per modality,
all 2M experts at once, fewer when the working set would exceed ``expert_chunk_mb``), and
self-attention runs one ``scaled_dot_product_attention`` per length bucket. With
``expert_grad_to_inputs=False`` frozen experts run without autograd. ``tests/test_femf.py`` checks
the stacked experts against a plain per-sequence transformer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks
from ..data.batch import MODALITIES, MODALITY_LETTERS, Batch, DatasetInfo
from ..data.validate import feature_statistics
from ..spectral.dft import dft_split, reference_cutoff_split
from .base import Dropout, ModelOutput, dropout, masked_avg, task_and_aux_losses
from .packing import Segment, StackedExperts, StackedRouters, pad_to, to_layout, torch_default_init
from .registry import HASH_NEUTRAL, ModelSpec, Param, register

_ABBR = {"text": "t", "audio": "a", "vision": "v"}

#: Loss weights of the public reference code (docs/reference-differences.md, row 4); the paper uses 1 for all.
#: The reference sums its three reconstruction errors where mser averages them: its 0.2 is 0.6 here.
REFERENCE_LOSS_WEIGHTS = dict(w_task=1.0, w_train=1.0, w_orth=0.1, w_rec=0.6, w_sim=0.5, w_cyc=0.5,
                              w_align=0.4)

#: Paper's best interaction orders (Sec. 4.8): text a->v, audio t->v, vision t->a.
PAPER_ORDER = "t:av,a:tv,v:ta"
#: The order the reference code runs (docs/reference-differences.md, row 7).
REFERENCE_ORDER = "t:av,a:tv,v:at"


@dataclass
class FEMFConfig:
    """Every knob of FEMF. Defaults are small; presets ``quick`` and ``paper`` fill in sizes.

    Sizes: ``hidden`` (model width, 256 in the paper), ``heads``, ``expert_depth`` (Q, eq. 9),
    ``expert_ffn`` / ``interaction_ffn`` / ``hpm_ffn`` (feed-forward widths, ``None`` = hidden),
    ``router_hidden`` (two-layer router MLP, ``None`` = 2 * hidden), ``fusion_hidden`` (eq. 22 MLP),
    ``interaction_layers`` (T, Sec. 3.4).
    Frequency: ``cutoff_ratio`` (c: fraction of rfft bins kept low), ``alpha`` (eq. 15),
    ``dft_method`` (see :func:`mser_lib.spectral.dft.dft_split`).
    Interaction order: ``"t:av,a:tv,v:ta"`` = text attends audio then vision, etc.
    Switches (paper Tables 2-4): ``use_dtm``, ``use_fae``, ``use_mim``, ``use_hpm``,
    ``use_l_align``, ``use_l_rec``, ``use_l_cyc``, ``use_l_orth``, ``use_l_sim``, ``modalities``.
    A switch that is off removes the module (its parameters) and its loss terms.
    Loss weights (eq. 28, paper: all 1): ``w_task``, ``w_train``, ``w_sim``, ``w_orth``, ``w_rec``,
    ``w_cyc``, ``w_align``; ``task_loss_kind`` "mse" (eq. 26) or "l1".
    Stages: ``freeze_experts`` (freeze the expert parameters after stage 1, the paper),
    ``expert_grad_to_inputs`` (True, the paper: gradients pass through the frozen experts to the
    encoders; False: the speed option, frozen experts run without autograd), ``dis_in_expert_stage``.
    ``return_attention``: add expert attention maps to diagnostics.
    ``expert_chunk_mb``: working-set budget of one batched expert computation on the CPU (the experts
    of a modality run together when they fit; large tensors are slow to allocate on CPU; a chunk holds a
    multiple of the intra-op threads where more but not all fit). On CUDA the budget is at least
    :data:`~mser_lib.models.packing.CUDA_CHUNK_MB`. Chunking changes outputs only by
    float rounding (``tests/test_femf.py``).
    """

    hidden: int = 64
    heads: int = 2
    expert_depth: int = 2
    expert_ffn: int | None = None
    interaction_layers: int = 1
    interaction_ffn: int | None = None
    interaction_order: str = PAPER_ORDER
    router_hidden: int | None = None
    hpm_ffn: int | None = None
    fusion_hidden: int = 16
    dropout: float = 0.1
    # dropout on the attention probabilities (experts and interaction). The paper gives none and the
    # reference run script uses 0.0; a non-zero value also forces PyTorch's slow attention kernel.
    attn_dropout: float = 0.0
    alpha: float = 0.3
    cutoff_ratio: float = 0.6
    dft_method: str = "auto"
    modalities: str = "tav"
    use_dtm: bool = True
    use_fae: bool = True
    use_mim: bool = True
    use_hpm: bool = True
    use_l_align: bool = True
    use_l_rec: bool = True
    use_l_cyc: bool = True
    use_l_orth: bool = True
    use_l_sim: bool = True
    w_task: float = 1.0
    w_train: float = 1.0
    w_sim: float = 1.0
    w_orth: float = 1.0
    w_rec: float = 1.0
    w_cyc: float = 1.0
    w_align: float = 1.0
    task_loss_kind: str = "mse"
    freeze_experts: bool = True
    expert_grad_to_inputs: bool = True
    dis_in_expert_stage: bool = True
    # Stage 2 keeps eq. 10 (L_train) on each modality's own experts (eq. 28 sums L_train into the total;
    # the paper freezes the experts' parameters, not the objective). The reference has no L_train in stage 2.
    train_in_full_stage: bool = True
    # Dropout inside the frozen experts in stage 2. The paper is silent; the reference never freezes them
    # and so keeps their dropout, which we follow.
    frozen_expert_dropout: bool = True
    # Eq. 25: L_align pulls the shared head towards the final prediction; the paper says the constraint
    # "encourages the shared representations" to align with the decision, and the reference detaches the
    # prediction. False also lets L_align's gradient move the prediction towards the shared head.
    align_detach_prediction: bool = True
    # --- the public reference code's behaviours (docs/reference-differences.md); each is off by default,
    # and the preset "reference" turns them all on.
    cutoff_rule: str = "paper"        # "reference": c = int(T * cutoff_ratio) as an rfft index on the padded batch
    router_per_band: bool = True      # False: one router per modality for both bands (the reference's router_<m>)
    expert_block: str = "paper"       # "reference": no output projection or LayerNorm, GELU MLP (see packing.py)
    expert_heads: str = "per_band"    # "per_modality": one head per modality for both bands; stage 1 fits their sum
    hpm_kind: str = "paper"           # "reference": sigmoid-gated per-modality and joint features, a residual MLP
                                      # and one output layer instead of eq. 20-23's weighted heads
    shared_head: str = "own"          # "text_expert": L_align's shared prediction uses the text expert's head
    orth_kind: str = "squared_cosine" # "signed_cosine": the reference's cos(x^s, x^u), minimised towards -1
    rec_target: str = "input"         # "projected": decoders reconstruct P_m(x_m) (the reference), not x_m (eq. 5)
    detach_dis_targets: bool = False  # True: L_rec and L_cyc targets are detached (the reference)
    # False: the interaction's cross-attention attends to padded utterances as the reference's does (no key mask in
    # FEMF/MultiAttn.py, after model_expert_softmoe.py zeroes the padding: each padded key and value is the layer's
    # bias, and how many there are depends on the batch). The paper (eq. 16-17) attends over a modality's sequence,
    # which the padding is not part of, so mser masks padded keys. In the preset "reference". Hash-neutral
    # (registry.HASH_NEUTRAL): records from before it keep their hash.
    attention_key_mask: bool = field(default=True, metadata=HASH_NEUTRAL)
    # How the stacked experts and routers start: "xavier" (Xavier-uniform weights, zero biases; mser's choice, the
    # papers are silent) or "torch" (nn.Linear's default, weights and biases uniform in +-1/sqrt(fan_in)), as the
    # reference builds them from nn.Linear. In the preset "reference". Hash-neutral at its default.
    expert_init: str = field(default="xavier", metadata=HASH_NEUTRAL)
    # The disentanglement module. "paper": shared and private codes as wide as the model (eq. 1 leaves their width
    # open) and a decoder per modality (eq. 4's D_m). "reference": the reference's DisentangleModule and
    # proj_distangle (model_expert_softmoe.py): codes half as wide, one decoder for every modality, and one linear
    # map back to the model width that every modality's private code (the experts' input) and L_align's summed
    # shared code pass through. Needs rec_target="projected" (one decoder has one output width). In the preset
    # "reference". Hash-neutral at its default.
    dis_module: str = field(default="paper", metadata=HASH_NEUTRAL)
    # The reference's loader zero-pads every vision vector to 1024 columns (``pad_to_1024`` in
    # dataloader_cmumosi.py) before its nn.Linear(1024, H): the padded columns never carry a value, so the only
    # effect is the start of the vision projection, uniform in +-1/sqrt(1024) instead of +-1/sqrt(d_v). A width
    # here builds the projection as nn.Linear(width, H) and keeps the columns of the real features (the same
    # numbers, same forward, no padded copy of the data). Vision wider than this is refused (the reference
    # truncates it). None: nn.Linear(d_v, H). In the preset "reference" (1024). Hash-neutral at its default.
    pad_vision_to: int | None = field(default=None, metadata=HASH_NEUTRAL)
    return_attention: bool = False
    expert_chunk_mb: float = 16.0

    def __post_init__(self) -> None:
        """Range checks (:mod:`mser_lib.checks`): every entry point that builds a config gets them."""
        checks.check_types(self)
        checks.integer(self, "hidden", 1)
        checks.integer(self, "heads", 1)
        if self.hidden % self.heads:
            raise checks.ConfigError("FEMFConfig", "hidden", self.hidden,
                                     f"a multiple of heads={self.heads}")
        checks.integer(self, "expert_depth", 1)
        checks.integer(self, "interaction_layers", 0)
        for f in ("expert_ffn", "interaction_ffn", "router_hidden", "hpm_ffn"):
            checks.integer(self, f, 1, optional=True, none_means="= hidden")
        checks.integer(self, "fusion_hidden", 1)
        checks.dropouts(self, "dropout", "attn_dropout")
        checks.real(self, "alpha", 0.0, 1.0)
        checks.real(self, "cutoff_ratio", 0.0, 1.0)
        checks.choice(self, "dft_method", ("auto", "matrix", "fft"))
        checks.modalities(self)
        try:
            parse_order(self.interaction_order, [m for m in MODALITIES if m[0] in self.modalities])
        except (ValueError, KeyError) as exc:
            raise checks.ConfigError("FEMFConfig", "interaction_order", self.interaction_order,
                                     f"entries like 't:av,a:tv,v:ta' naming each other modality once ({exc})"
                                     ) from None
        checks.weights(self, "w_task", "w_train", "w_sim", "w_orth", "w_rec", "w_cyc", "w_align")
        checks.choice(self, "task_loss_kind", ("mse", "l1"))
        checks.choice(self, "cutoff_rule", ("paper", "reference"))
        checks.choice(self, "expert_block", ("paper", "reference"))
        checks.choice(self, "expert_init", ("xavier", "torch"))
        checks.choice(self, "expert_heads", ("per_band", "per_modality"))
        checks.choice(self, "hpm_kind", ("paper", "reference"))
        checks.choice(self, "shared_head", ("own", "text_expert"))
        checks.choice(self, "orth_kind", ("squared_cosine", "signed_cosine"))
        checks.choice(self, "rec_target", ("input", "projected"))
        checks.choice(self, "dis_module", ("paper", "reference"))
        checks.integer(self, "pad_vision_to", 1, optional=True, none_means="vision at its own width")
        if self.dis_module == "reference" and self.use_dtm and self.rec_target != "projected":
            raise checks.ConfigError("FEMFConfig", "dis_module", self.dis_module,
                                     "'paper' unless rec_target='projected' (the reference's one decoder "
                                     "reconstructs the projected features of every modality)")
        if self.shared_head == "text_expert" and not (self.use_fae and "t" in self.modalities):
            raise checks.ConfigError("FEMFConfig", "shared_head", self.shared_head,
                                     "'own' unless the model has a text expert (use_fae=True and text among "
                                     "the modalities)")
        checks.real(self, "expert_chunk_mb", 0.0, low_open=True)


def parse_order(order: str, mods: list[str]) -> dict[str, list[str]]:
    """``"t:av,a:tv,v:ta"`` -> ``{"text": ["audio", "vision"], ...}`` restricted to ``mods``."""
    out: dict[str, list[str]] = {}
    for part in order.replace(" ", "").split(","):
        if not part:
            continue
        target, keys = part.split(":")
        tm = MODALITY_LETTERS[target]
        ks = [MODALITY_LETTERS[k] for k in keys]
        if tm in ks or len(set(ks)) != len(ks):
            raise ValueError(f"bad interaction order entry {part!r}")
        out[tm] = ks
    res = {}
    for m in mods:
        keys = [k for k in out.get(m, [k for k in MODALITIES if k != m]) if k in mods]
        others = sorted(k for k in mods if k != m)
        if sorted(keys) != others:
            raise ValueError(f"interaction order for {m!r} must name each other modality once: {order!r}")
        res[m] = keys
    return res


# --------------------------------------------------------------------------------------------
# loss helper
# --------------------------------------------------------------------------------------------

def _mean0(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values``; 0 (with a gradient path) when empty."""
    return values.mean() if values.numel() else values.sum()


# --------------------------------------------------------------------------------------------
# modality interaction (eq. 16-19)
# --------------------------------------------------------------------------------------------

class CrossStep(nn.Module):
    """One cross-attention step (eq. 16-17): ``LayerNorm(R_q + MHA(R_q W_Q, R_k W_K, R_k W_V))``,
    computed on packed tokens (attention itself on each modality's padded grid). ``key_mask=False``: padded
    keys take part, each with the key/value layer's bias as its key and value (the reference's attention,
    ``FEMFConfig.attention_key_mask``)."""

    def __init__(self, hidden: int, heads: int, dropout: float, attn_dropout: float = 0.0, key_mask: bool = True):
        super().__init__()
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.o = nn.Linear(hidden, hidden)
        self.ln = nn.LayerNorm(hidden)
        self.heads, self.dropout, self.attn_dropout, self.key_mask = heads, dropout, attn_dropout, key_mask

    def forward(self, query: torch.Tensor, qs: Segment, key: torch.Tensor, ks: Segment) -> torch.Tensor:
        """query ``(N_q, H)`` tokens of segment ``qs``; key ``(N_k, H)`` tokens of segment ``ks``.
        Samples without key tokens skip the step (their attention output is zeroed)."""
        H, nh = query.shape[-1], self.heads
        q = qs.scatter(self.q(query)).view(qs.B, qs.L, nh, H // nh).transpose(1, 2)
        kv = ks.scatter(self.kv(key))
        if not self.key_mask:      # a zeroed padded position, projected: the bias
            kv = kv + (~ks.mask).unsqueeze(-1).to(kv.dtype) * self.kv.bias
        k, v = kv.view(ks.B, ks.L, 2, nh, H // nh).permute(2, 0, 3, 1, 4).unbind(0)
        a = F.scaled_dot_product_attention(q, k, v,
                                           attn_mask=ks.key_mask[:, None, None, :] if self.key_mask else None,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        a = qs.gather(a.transpose(1, 2).reshape(qs.B, qs.L, H))
        a = self.o(a) * ks.present.index_select(0, qs.sample).unsqueeze(1).to(a.dtype)
        return self.ln(query + dropout(a, self.dropout, self.training))


class InteractionBranch(nn.Module):
    """Layer j of one target modality's branch: two (or fewer) cross steps, then FFN (eq. 18-19)."""

    def __init__(self, keys: list[str], hidden: int, heads: int, ffn: int, dropout: float,
                 attn_dropout: float = 0.0, key_mask: bool = True):
        super().__init__()
        self.keys = list(keys)
        self.steps = nn.ModuleList([CrossStep(hidden, heads, dropout, attn_dropout, key_mask) for _ in keys])
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.ReLU(), Dropout(dropout),
                                 nn.Linear(ffn, hidden))
        self.ln = nn.LayerNorm(hidden)
        self.dropout = dropout

    def forward(self, r: torch.Tensor, seg: Segment, keys: dict, segs: dict) -> torch.Tensor:
        """``r``: ``(N_m, H)`` tokens of the target; ``keys``: ``{k: (N_k, H)}`` (the R_k of eq. 16)."""
        for name, step in zip(self.keys, self.steps):
            r = step(r, seg, keys[name], segs[name])
        return self.ln(r + dropout(self.ffn(r), self.dropout, self.training))


# --------------------------------------------------------------------------------------------
# FEMF
# --------------------------------------------------------------------------------------------

class FEMF(nn.Module):
    """FEMF (paper 000). ``FEMF(info, config)``; ``forward(batch) -> ModelOutput``.

    Output:
        ``prediction``: ``(B,)`` / ``(B, L)`` regression, ``(B, C)`` / ``(B, L, C)`` logits.
        ``aux_losses`` (weighted, present only when switched on): ``sim``, ``orth``, ``rec``, ``cyc``
        (eq. 2-6), ``train`` (eq. 27), ``align`` (eq. 25). ``loss()`` adds ``w_task * L_task``
        (eq. 26) in stage ``full`` (eq. 28).
        ``diagnostics`` (detached): ``router_low`` / ``router_high`` ``(B, M, M)`` mean router
        weights [sample, modality, expert]; ``fusion_weights`` ``(B, M+1)`` / ``(B, L, M+1)``
        (eq. 22, order: modalities then joint); ``head_predictions`` (regression, same layout with
        a trailing M+1 axis); ``band_energy`` ``(B, M, 2)`` (low, high energy of x_m^u);
        ``expert_predictions`` in stage ``experts`` (regression: ``(B, M, 2)`` / ``(B, L, M, 2)``);
        with ``return_attention``: ``attn_low_<m>`` / ``attn_high_<m>`` ``(B, L_m, L_m)``, the last
        layer of each modality's own expert, head-averaged; and the unweighted loss values
        ``loss_<name>``.
    """

    def __init__(self, info: DatasetInfo, config: FEMFConfig):
        super().__init__()
        self.info, self.config = info, config
        c = config
        mods = [m for m in MODALITIES if _ABBR[m] in c.modalities]
        if not mods or any(ch not in "tav" for ch in c.modalities):
            raise ValueError(f"modalities must be a non-empty subset of 'tav', got {c.modalities!r}")
        self.mods = mods
        H = c.hidden
        if H % c.heads:
            raise ValueError(f"hidden {H} must be divisible by heads {c.heads}")
        self.out_dim = info.num_classes if info.task == "classification" else 1
        if self.out_dim is None:
            raise ValueError("classification needs info.num_classes")
        self.return_attention = c.return_attention
        self.stage = "full"
        self.predictions_only = False               # eval mode: skip what only the losses need (models/base.py)

        self._build_disentanglement(info, mods)     # 3.2
        self._build_experts(info, mods)             # 3.3
        self._build_interaction(info, mods)         # 3.4
        self._build_prediction(info, mods)          # 3.5

    def _build_disentanglement(self, info: DatasetInfo, mods: list[str]) -> None:
        """Section 3.2: input projections, shared and private encoders, decoders (and the statistics the decoders'
        targets are standardised with)."""
        c, M, H = self.config, len(mods), self.config.hidden
        # 3.2: input projections, shared and private encoders, decoders
        self.proj = nn.ModuleDict({m: self._input_projection(m, info.dims[m]) for m in mods})
        self.has = {
            "sim": c.use_dtm and c.use_l_sim and M >= 2,
            "orth": c.use_dtm and c.use_l_orth,
            "rec": c.use_dtm and c.use_l_rec,
            "cyc": c.use_dtm and c.use_l_cyc and any(m in ("audio", "vision") for m in mods),
            "align": c.use_dtm and c.use_l_align,
            "train": c.use_fae,
        }
        need_shared = any(self.has[k] for k in ("sim", "orth", "rec", "cyc", "align"))
        ref = c.dis_module == "reference"
        Hs, Hp = (H // 2, H - H // 2) if ref else (H, H)         # the reference: int(H * 0.5) and the rest
        self.shared_enc = nn.Linear(H, Hs) if need_shared else None
        self.private_enc = nn.ModuleDict({m: nn.Linear(H, Hp) for m in mods}) if c.use_dtm else None
        # the reference's proj_distangle: private codes (and L_align's summed shared code) back to the model width
        self.code_up = nn.Linear(Hp, H) if ref and c.use_dtm else None
        self.dec_mods = [m for m in mods
                         if self.has["rec"] or (self.has["cyc"] and m in ("audio", "vision"))]
        rec_width = {m: H if c.rec_target == "projected" else info.dims[m] for m in self.dec_mods}
        self.decoders = nn.ModuleDict(
            {"shared": nn.Sequential(nn.Linear(Hs + Hp, H), nn.ReLU(), nn.Linear(H, H))} if ref else
            {m: nn.Sequential(nn.Linear(Hs + Hp, H), nn.ReLU(), nn.Linear(H, rec_width[m])) for m in self.dec_mods}
        ) if self.dec_mods else None
        # The decoders reconstruct *standardised* inputs, so L_rec and L_cyc weigh every feature alike
        # whatever its unit (pitch in Hz next to unit-scale embeddings). Features the loader standardised
        # (``info.source["standardize"]``) are used as they are; otherwise :meth:`prepare` stores the train
        # split's per-feature mean and std here (computed in float64, stored as float32 buffers, kept in
        # checkpoints).
        self.rec_standardize = (bool(self.dec_mods) and c.rec_target == "input"
                                and not (info.source or {}).get("standardize", False))
        self._rec_ready = False            # set by prepare() or by loading a checkpoint
        if self.rec_standardize:
            for m in self.dec_mods:
                self.register_buffer(f"rec_mean_{m}", torch.zeros(info.dims[m]))
                self.register_buffer(f"rec_std_{m}", torch.ones(info.dims[m]))

    def _input_projection(self, m: str, width: int) -> nn.Linear:
        """P_m: (..., width) -> (..., H). With ``pad_vision_to`` the vision projection starts as the reference's
        nn.Linear(pad_vision_to, H) on zero-padded features does: its first ``width`` columns of weights."""
        pad, H = self.config.pad_vision_to, self.config.hidden
        if m != "vision" or pad is None:
            return nn.Linear(width, H)
        if width > pad:
            raise checks.ConfigError("FEMFConfig", "pad_vision_to", pad,
                                     f"at least the vision width {width} (the reference would truncate the "
                                     f"features to {pad} columns; mser does not drop features)")
        full = nn.Linear(pad, H)
        lin = torch.nn.utils.skip_init(nn.Linear, width, H)       # no draws: the RNG moves as the reference's
        with torch.no_grad():
            lin.weight.copy_(full.weight[:, :width])
            lin.bias.copy_(full.bias)
        return lin

    def _build_experts(self, info: DatasetInfo, mods: list[str]) -> None:
        """Section 3.3: the frequency experts and their routers (none without ``use_fae``)."""
        c, M, H = self.config, len(mods), self.config.hidden
        # 3.3: experts and routers. Expert (f, m) (eq. 9): Q post-LN transformer blocks + FC head;
        # router (f, m) (eq. 12-13): two-layer MLP + softmax. Each set is stored stacked (packing.py).
        if c.use_fae:
            self.experts = StackedExperts(M, H, c.heads, c.expert_depth, c.expert_ffn or H, self.out_dim,
                                           c.attn_dropout, block=c.expert_block,
                                           heads_per_band=c.expert_heads == "per_band")
            self.anchor = "text" in mods
            r_in = 2 * H if self.anchor else H
            self.routers = StackedRouters(M, r_in, c.router_hidden or 2 * H, per_band=c.router_per_band)
            if c.expert_init == "torch":
                torch_default_init(self.experts)
                torch_default_init(self.routers)
        else:
            self.experts = None
            self.routers = None

    def _build_interaction(self, info: DatasetInfo, mods: list[str]) -> None:
        """Section 3.4: the interaction layers (none without ``use_mim`` or with one modality)."""
        c, M, H = self.config, len(mods), self.config.hidden
        # 3.4: interaction
        self.order = parse_order(c.interaction_order, mods)
        if c.use_mim and M >= 2 and c.interaction_layers > 0:
            self.interaction = nn.ModuleList([
                nn.ModuleDict({m: InteractionBranch(self.order[m], H, c.heads, c.interaction_ffn or H,
                                                    c.dropout, c.attn_dropout, c.attention_key_mask)
                               for m in mods})
                for _ in range(c.interaction_layers)])
        else:
            self.interaction = None

    def _build_prediction(self, info: DatasetInfo, mods: list[str]) -> None:
        """Section 3.5: the hierarchical prediction module (the paper's or the reference's), the joint head and the
        shared head of L_align."""
        c, M, H = self.config, len(mods), self.config.hidden
        # 3.5: hierarchical prediction
        od = self.out_dim
        self.hpm_ref = None
        if c.use_hpm:
            fh = c.hpm_ffn or H
            self.hpm_ffn = nn.ModuleDict({m: nn.Sequential(nn.Linear(H, fh), nn.ReLU(), Dropout(c.dropout),
                                                           nn.Linear(fh, H)) for m in mods})
            if c.hpm_kind == "paper":
                self.hpm_head = nn.ModuleDict({m: nn.Linear(H, od) for m in mods})
                self.fusion_mlp = nn.Sequential(nn.Linear((M + 1) * od, c.fusion_hidden), nn.ReLU(),
                                                nn.Linear(c.fusion_hidden, M + 1))
            else:   # the reference: projector_<m>, projector_c, proj1 and nlp_head over 2 M H features
                self.hpm_head = self.fusion_mlp = None
                self.hpm_ref = nn.ModuleDict({"proj": nn.ModuleDict({m: nn.Linear(H, H) for m in mods}),
                                              "joint": nn.Linear(M * H, M * H),
                                              "mix": nn.Linear(2 * M * H, 2 * M * H),
                                              "out": nn.Linear(2 * M * H, od)})
        else:
            self.hpm_ffn = self.hpm_head = self.fusion_mlp = None
        self.joint_head = nn.Linear(M * H, od) if self.hpm_ref is None else None
        self.shared_head = nn.Linear(H, od) if self.has["align"] and c.shared_head == "own" else None

    def prepare(self, dataset) -> dict:
        """Called by the trainer before training: the train split's per-feature mean and std
        (:func:`mser_lib.data.validate.feature_statistics`) of every decoded modality, when the loader did
        not standardise."""
        if not self.rec_standardize:
            return {}
        for m in self.dec_mods:
            stats = feature_statistics(dataset.train, m)
            if stats is None:
                raise ValueError(f"FEMF: no real {m} positions in the train split to standardise with")
            getattr(self, f"rec_mean_{m}").copy_(torch.from_numpy(stats[0]))
            getattr(self, f"rec_std_{m}").copy_(torch.from_numpy(stats[1]))
        self._rec_ready = True
        return {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.rec_standardize:
            if not any(k.startswith(prefix + "rec_mean_") for k in state_dict):
                raise RuntimeError("this FEMF checkpoint has no reconstruction statistics (rec_mean_*/rec_std_*): it "
                                   "was trained by an older mser, whose decoders reconstructed raw features; delete "
                                   "the run's checkpoints folder (or train with --force) to retrain it")
            self._rec_ready = True
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------------------------- stages
    def stages(self) -> list[str]:
        """``["experts", "full"]`` with the frequency-aware experts, else ``["full"]``."""
        return ["experts", "full"] if self.experts is not None else ["full"]

    def set_stage(self, name: str) -> None:
        """``"experts"``: train experts on eq. 10/27 (+ L_dis). ``"full"``: the whole model, experts
        frozen when ``config.freeze_experts`` (requires_grad False; run without autograd only when
        ``config.expert_grad_to_inputs`` is False)."""
        if name == "experts":
            if self.experts is None:
                raise ValueError("stage 'experts' needs use_fae=True")
            self.experts.requires_grad_(True)
        elif name == "full":
            if self.experts is not None and self.config.freeze_experts:
                self.experts.requires_grad_(False)
        else:
            raise ValueError(f"unknown stage {name!r}; stages: {self.stages()}")
        self.stage = name

    @property
    def experts_frozen(self) -> bool:
        return self.experts is not None and not any(p.requires_grad for p in self.experts.parameters())

    # ---------------------------------------------------------------------------------- forward
    def forward(self, batch: Batch) -> ModelOutput:
        c = self.config
        position = batch.layout == "position"
        mods = self.mods
        drop = c.dropout if self.training else 0.0
        losses = self.training or not self.predictions_only          # models/base.py: predictions_only
        segs, x_tok = self._tokens(batch, position)
        label_mask = batch.label_mask.bool()
        raw, diag = {}, {}

        # ---- 3.2 disentanglement (eq. 1-7), on tokens
        h = {m: dropout(self.proj[m](x_tok[m]), drop, self.training) for m in mods}
        private = {m: self.private_enc[m](h[m]) for m in mods} if self.private_enc is not None else h
        shared = {m: self.shared_enc(h[m]) for m in mods} if self.shared_enc is not None else None
        if losses and self.private_enc is not None and (self.stage == "full" or c.dis_in_expert_stage):
            raw.update(self._dis_losses(x_tok, h, segs, private, shared, position))
        if self.code_up is not None:                                  # the reference's proj_distangle
            private = {m: self.code_up(private[m]) for m in mods}

        # ---- 3.3 frequency-aware MoE (eq. 8-15)
        if self.experts is not None:
            bands, grids = self._bands(segs, private, diag)
            if self.stage == "experts":
                return self._expert_stage(batch, bands, segs, label_mask, position, raw, diag, drop)
            R = self._moe(batch, bands, grids, segs, private, position, raw, diag, label_mask, drop, losses)
        else:
            R = private

        # ---- 3.4 interaction (eq. 16-19): keys are the MoE outputs R_k, queries are updated
        if self.interaction is not None:
            cur = dict(R)
            for layer in self.interaction:
                cur = {m: layer[m](cur[m], segs[m], R, segs) for m in mods}
            R = cur

        # ---- 3.5 hierarchical prediction (eq. 20-25)
        out, lab_idx = self._predict(R, segs, label_mask, position, diag)
        if losses and self.has["align"]:                              # eq. 24-25
            raw["align"] = self._align_loss(out, shared, segs, lab_idx, label_mask, position)
        out = to_layout(out, position, label_mask)
        prediction = out.squeeze(-1) if self.out_dim == 1 else out
        return self._finish(prediction, raw, diag)

    def _tokens(self, batch: Batch, position: bool) -> tuple[dict, dict]:
        """Each modality's :class:`Segment` of the packed tokens and its real tokens ``{m: (N_m, d_m)}`` (position
        layout: padded to the label positions first)."""
        Lp = batch.labels.shape[1] if position else None
        segs, start, x_tok = {}, 0, {}
        for j, m in enumerate(self.mods):
            x, mk = batch.features(m), batch.mask(m).bool()
            if position:
                x, mk = pad_to(x, Lp), pad_to(mk, Lp)
            segs[m] = Segment(j, mk, start)
            start = segs[m].stop
            x_tok[m] = segs[m].gather(x)                              # (N_m, d_m): real tokens only
        return segs, x_tok

    def _bands(self, segs: dict, private: dict, diag: dict) -> tuple[dict, dict]:
        """The DFT split of each modality's private features (eq. 8): ``bands`` ``{m: (low, high)}`` on tokens and
        ``grids`` ``{m: (low, high)}`` on the padded grid ``(B, L, H)``; the band energies go to ``diag``."""
        c = self.config
        bands, grids, energy = {}, {}, []
        for m in self.mods:
            s = segs[m]
            if c.cutoff_rule == "reference":                      # padding enters, bins by index
                low, high = reference_cutoff_split(s.scatter(private[m]), c.cutoff_ratio)
            else:
                low, high = dft_split(s.scatter(private[m]), s.mask, c.cutoff_ratio, c.dft_method)
            grids[m] = (low, high)
            bands[m] = (s.gather(low), s.gather(high))
            energy.append(torch.stack([low.pow(2).sum((1, 2)), high.pow(2).sum((1, 2))], 1))
        diag["band_energy"] = torch.stack(energy, 1).detach()     # (B, M, 2)
        return bands, grids

    def _predict(self, R: dict, segs: dict, label_mask, position: bool, diag: dict):
        """Section 3.5 (eq. 20-23): the prediction ``(n, od)`` per sample or labelled position, and the labelled
        positions' flat indices (position layout, else ``None``)."""
        mods, lab_idx = self.mods, None
        if position:
            lab_idx = torch.nonzero(label_mask.reshape(-1)).squeeze(1)   # labelled positions
            # (N_lab, H) per modality, zeros where the modality is absent
            feat = {m: segs[m].scatter(R[m]).flatten(0, 1).index_select(0, lab_idx) for m in mods}
            avail = {m: segs[m].mask.reshape(-1).index_select(0, lab_idx) for m in mods}
        else:
            feat = {m: segs[m].mean(R[m]) for m in mods}             # (B, H)
            avail = {m: segs[m].present for m in mods}
        if self.hpm_ref is not None:                                  # the reference's prediction module
            return self._reference_hpm(feat, mods), lab_idx
        if self.hpm_head is None:
            return self.joint_head(torch.cat([feat[m] for m in mods], -1)), lab_idx   # eq. 21
        joint = self.joint_head(torch.cat([feat[m] for m in mods], -1))   # eq. 21
        preds = [self.hpm_head[m](feat[m] + self.hpm_ffn[m](feat[m])) for m in mods]   # eq. 20
        preds.append(joint)
        z = torch.stack(preds, -2)                                # (n, M+1, od)
        logits = self.fusion_mlp(z.flatten(-2))                   # eq. 22
        ok = torch.stack([avail[m] for m in mods] + [torch.ones_like(avail[mods[0]])], -1)
        weights = logits.masked_fill(~ok, float("-inf")).softmax(-1)
        out = (weights.unsqueeze(-1) * z).sum(-2)                 # eq. 23
        diag["fusion_weights"] = to_layout(weights.detach(), position, label_mask)
        if self.out_dim == 1:
            diag["head_predictions"] = to_layout(z.squeeze(-1).detach(), position, label_mask)
        return out, lab_idx

    def _align_loss(self, out, shared: dict, segs: dict, lab_idx, label_mask, position: bool) -> torch.Tensor:
        """L_align (eq. 24-25), unweighted: the shared features' prediction against the model's."""
        c, mods = self.config, self.mods
        if position:
            s_sum = sum(segs[m].scatter(shared[m]).flatten(0, 1).index_select(0, lab_idx) for m in mods)
        else:
            s_sum = sum(segs[m].mean(shared[m]) for m in mods)
        if self.code_up is not None:
            s_sum = self.code_up(s_sum)
        if self.shared_head is not None:
            y_shared = self.shared_head(s_sum)
        else:                                                     # the text expert's head (low band)
            y_shared = self.experts.head_one(mods.index("text"), s_sum)
        target = out.detach() if c.align_detach_prediction else out
        err = (y_shared - target).pow(2).mean(-1)
        if position:
            return err.mean() if err.numel() else err.sum()
        return masked_avg(err, label_mask)

    # ------------------------------------------------------------------------------ components
    def _dis_losses(self, x_tok, h, segs, private, shared, position) -> dict:
        """Eq. 2-6 (unweighted), on real tokens. ``x_tok``: inputs ``{m: (N_m, d_m)}``; ``h``: their
        projections ``{m: (N_m, H)}`` (the reconstruction target when ``rec_target="projected"``)."""
        c, mods, out = self.config, self.mods, {}
        if self.has["sim"]:                                           # eq. 2
            terms = []
            for i in range(len(mods)):
                for k in range(i + 1, len(mods)):
                    a, b = mods[i], mods[k]
                    sa, sb = segs[a], segs[b]
                    if position:
                        both = torch.nonzero((sa.mask & sb.mask).reshape(-1)).squeeze(1)
                        va = sa.scatter(shared[a]).reshape(-1, shared[a].shape[-1]).index_select(0, both)
                        vb = sb.scatter(shared[b]).reshape(-1, shared[b].shape[-1]).index_select(0, both)
                        ok = torch.ones(both.numel(), dtype=torch.bool, device=both.device)
                    else:
                        va, vb = sa.mean(shared[a]), sb.mean(shared[b])
                        ok = sa.present & sb.present
                    terms.append(masked_avg(1.0 - F.cosine_similarity(va, vb, dim=-1), ok))
            out["sim"] = torch.stack(terms).mean()
        if self.has["orth"]:                                          # eq. 3, bounded (squared cosine)
            cos = {m: F.cosine_similarity(shared[m], private[m], dim=-1) for m in mods}
            if c.orth_kind == "squared_cosine":
                out["orth"] = torch.stack([_mean0(cos[m].pow(2)) for m in mods]).mean()
            else:                                                     # the reference: signed, summed
                out["orth"] = torch.stack([_mean0(cos[m]) for m in mods]).sum()
        if self.decoders is not None:                                 # eq. 4-6
            anchor = "text" if "text" in mods else None
            rec, cyc = [], []
            for m in self.dec_mods:
                s = segs[m]
                if anchor is None or m == anchor:
                    src = shared[m]
                elif position:                                        # x_t^s at the same utterance
                    src = s.gather(segs[anchor].scatter(shared[anchor]))
                else:                                                 # pooled x_t^s of the sample
                    src = segs[anchor].mean(shared[anchor]).index_select(0, s.sample)
                dec = self.decoders["shared" if c.dis_module == "reference" else m]
                x_hat = dec(torch.cat([src, private[m]], -1))      # standardised x_m (or P_m x_m)
                target = h[m] if c.rec_target == "projected" else x_tok[m]
                if c.detach_dis_targets:
                    target = target.detach()
                if self.rec_standardize:
                    if self.training and not self._rec_ready:
                        warnings.warn("FEMF trains on features the loader did not standardise, but prepare(dataset) "
                                      "was not called: its decoders reconstruct raw features (fit_model calls it)",
                                      stacklevel=2)
                        self._rec_ready = True                 # warn once
                    mean, std = getattr(self, f"rec_mean_{m}"), getattr(self, f"rec_std_{m}")
                    target = (target - mean) / std
                if self.has["rec"]:
                    rec.append(_mean0((x_hat - target).pow(2).mean(-1)))
                if self.has["cyc"] and m in ("audio", "vision"):
                    if c.rec_target == "projected":                   # x̂ is already in the projected space
                        again = self.private_enc[m](x_hat)
                    else:
                        raw_hat = x_hat * std + mean if self.rec_standardize else x_hat
                        again = self.private_enc[m](self.proj[m](raw_hat))
                    goal = private[m].detach() if c.detach_dis_targets else private[m]
                    cyc.append(_mean0((again - goal).pow(2).mean(-1)))
            if rec:
                out["rec"] = torch.stack(rec).mean()
            if cyc:
                out["cyc"] = torch.stack(cyc).sum()
        return out

    def _expert_loss(self, pred: torch.Tensor, batch: Batch, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 10 for one expert: MSE (regression) or cross-entropy over ``mask``."""
        if self.out_dim == 1:
            err = (pred.squeeze(-1) - batch.labels.to(pred.dtype)).pow(2)
        else:
            target = batch.labels.reshape(-1).long().clamp_min(0)
            err = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target, reduction="none").view(mask.shape)
        return masked_avg(err, mask)

    def _expert_stage(self, batch, bands, segs, label_mask, position, raw, diag, drop):
        """Stage 1: expert (f, m) on x_m^f (eq. 9); L_train = sum of eq. 10 (eq. 27). With
        ``expert_heads="per_modality"`` (the reference) each modality's loss is on the sum of its two
        bands' predictions."""
        mods = self.mods
        M = len(mods)
        preds, oks, losses, maps = {}, {}, [], {}
        for m in mods:
            s = segs[m]
            mp = self.experts.new_maps(s, bands[m][0]) if self.return_attention else None
            heads = {f: [] for f in range(2)}
            if s.n:
                for gs, lo, hi in self.experts.chunks(s, [s.j, M + s.j], self.config.expert_chunk_mb):
                    gids, y, _ = self.experts.run_chunk(s, gs, lo, hi, bands[m], drop, mp)
                    for g, yg in zip(gids, y.unbind(0)):
                        heads[g // M].append(self.experts.head_one(g, yg))
            ok = (s.mask if position else s.present) & label_mask
            for f in range(2):
                tok = torch.cat(heads[f], 0) if heads[f] else bands[m][f].new_zeros(0, self.out_dim)
                p = s.per_sample(tok, position)
                if self.config.expert_heads == "per_band":
                    losses.append(self._expert_loss(p, batch, ok))
                preds[(f, m)], oks[(f, m)] = p, ok
            if self.config.expert_heads == "per_modality":
                losses.append(self._expert_loss(preds[(0, m)] + preds[(1, m)], batch, ok))
            if mp:
                maps.update(mp)
        raw["train"] = torch.stack(losses).sum()
        keys = [(f, m) for m in mods for f in range(2)]               # order: modality, band
        P = torch.stack([preds[k] for k in keys], -2)                 # (..., 2M, od)
        W = torch.stack([oks[k] for k in keys], -1).to(P.dtype).unsqueeze(-1)
        if self.config.expert_heads == "per_modality":               # a modality predicts with both bands
            P, W = P.unflatten(-2, (M, 2)).sum(-2), W.unflatten(-2, (M, 2))[..., 0, :]
        mean = (P * W).sum(-2) / W.sum(-2).clamp_min(1.0)
        prediction = mean.squeeze(-1) if self.out_dim == 1 else mean
        if self.out_dim == 1:
            e = torch.stack([preds[k] for k in keys], -2).squeeze(-1)
            diag["expert_predictions"] = e.view(*e.shape[:-1], M, 2).detach()
        self._add_maps(diag, maps)
        return self._finish(prediction, raw, diag)

    def _moe(self, batch, bands, grids, segs, private, position, raw, diag, label_mask, drop, losses=True):
        """Stage 2: eq. 11-15 on packed real tokens, chunked per modality (eq. 10 on each own expert too when
        ``losses``). Returns ``{m: R_m (N_m, H)}``."""
        c, mods = self.config, self.mods
        M = len(mods)
        frozen = self.experts_frozen
        grad_path = (not frozen) or c.expert_grad_to_inputs
        e_drop = drop if (not frozen or c.frozen_expert_dropout) else 0.0
        fit_own = losses and grad_path and self.has["train"] and c.train_in_full_stage
        coef = (c.alpha, 1.0 - c.alpha)                                # eq. 15
        anchor_seq = segs["text"].mean(private["text"]) if self.anchor and not position else None
        R, losses, maps = {}, [], {}
        for m in mods:
            s = segs[m]
            if s.n == 0:
                R[m] = bands[m][0]
                continue
            # routers (eq. 12-13): input [x_m^f ; text anchor]
            inp = torch.stack([bands[m][0], bands[m][1]], 0)          # (2, N_m, H)
            if self.anchor:
                if position:                                          # text band at the same utterance
                    anc = torch.stack([s.gather(grids["text"][f]) for f in range(2)])
                else:
                    anc = anchor_seq.index_select(0, s.sample).unsqueeze(0).expand(2, -1, -1)
                inp = torch.cat([inp, anc], -1)
            w = self.routers(inp, s.j, drop)                          # (2, N_m, M)
            wd = w.detach()
            diag.setdefault("router_low", []).append(s.mean(wd[0]))
            diag.setdefault("router_high", []).append(s.mean(wd[1]))
            mp = self.experts.new_maps(s, bands[m][0]) if self.return_attention else None
            parts, own = {}, {0: [], 1: []}
            for gs, lo, hi in self.experts.chunks(s, list(range(2 * M)), c.expert_chunk_mb):
                with torch.set_grad_enabled(torch.is_grad_enabled() and grad_path):
                    gids, y, (a, e) = self.experts.run_chunk(s, gs, lo, hi, bands[m], e_drop, mp)   # eq. 11
                # unbind, not an index per expert: an unbind's backward is one stack, each index's a
                # zero-filled copy of the whole tensor (kernel launches that dominate a step on CUDA)
                wfi = [wf.unbind(-1) for wf in (w if (a, e) == (0, s.n) else w[:, a:e]).unbind(0)]
                ys = y.unbind(0)
                for r, g in enumerate(gids):
                    f, i = divmod(g, M)
                    term = (coef[f] * wfi[f][i]).unsqueeze(-1) * ys[r]            # eq. 14-15
                    parts[(a, e)] = term if (a, e) not in parts else parts[(a, e)] + term
                    if i == s.j and fit_own:
                        own[f].append(self.experts.head_one(g, ys[r]))
            R[m] = torch.cat([parts[k] for k in sorted(parts)], 0)
            if fit_own:                                               # eq. 10 on each own expert
                ok = (s.mask if position else s.present) & label_mask
                p = [s.per_sample(torch.cat(own[f], 0), position) for f in range(2)]
                if c.expert_heads == "per_band":
                    losses += [self._expert_loss(pf, batch, ok) for pf in p]
                else:
                    losses.append(self._expert_loss(p[0] + p[1], batch, ok))
            if mp:
                maps.update(mp)
        if losses:
            raw["train"] = torch.stack(losses).sum()
        B = len(batch)
        for name in ("router_low", "router_high"):
            per = torch.zeros(B, M, M, device=label_mask.device)
            got = iter(diag.pop(name, []))
            for m in mods:
                if segs[m].n:
                    per[:, segs[m].j] = next(got)
            diag[name] = per
        self._add_maps(diag, maps)
        return R

    def _reference_hpm(self, feat: dict, mods: list[str]) -> torch.Tensor:
        """The reference's prediction module (``hpm_kind="reference"``), on ``feat`` ``{m: (n, H)}``:
        ``p_m = sigmoid(W_m (x_m + FFN_m(x_m)))``, ``j = sigmoid(W_c [x_t; x_a; x_v])``,
        ``z = [p_t; p_a; p_v; j]`` (``2 M H`` wide), ``y = W_out (z + drop(ReLU(W_1 z)))``: no eq. 22 weights."""
        r = self.hpm_ref
        gated = [torch.sigmoid(r["proj"][m](feat[m] + self.hpm_ffn[m](feat[m]))) for m in mods]
        gated.append(torch.sigmoid(r["joint"](torch.cat([feat[m] for m in mods], -1))))
        z = torch.cat(gated, -1)
        return r["out"](z + dropout(F.relu(r["mix"](z)), self.config.dropout, self.training))

    def _add_maps(self, diag: dict, maps: dict) -> None:
        for (band, j), a in maps.items():
            diag[f"attn_{'low' if band == 0 else 'high'}_{self.mods[j]}"] = a

    def _finish(self, prediction, raw: dict, diag: dict) -> ModelOutput:
        c = self.config
        wts = {"sim": c.w_sim, "orth": c.w_orth, "rec": c.w_rec, "cyc": c.w_cyc, "align": c.w_align,
               "train": c.w_train}
        aux = {k: wts[k] * v for k, v in raw.items()}
        for k, v in raw.items():
            diag[f"loss_{k}"] = v.detach()
        return ModelOutput(prediction=prediction, aux_losses=aux, diagnostics=diag)

    # ------------------------------------------------------------------------------------- loss
    def loss(self, output: ModelOutput, batch: Batch) -> tuple[torch.Tensor, dict]:
        """Eq. 28: ``w_task * L_task`` (eq. 26, stage ``full`` only) + the weighted auxiliary terms.

        Returns ``(total, parts)`` with ``parts`` the detached weighted terms (``task`` unweighted).
        """
        return task_and_aux_losses(output, batch, self.info.task, self.config.task_loss_kind,
                                   with_task=self.stage != "experts", task_weight=self.config.w_task)


# --------------------------------------------------------------------------------------------
# presets and registration
# --------------------------------------------------------------------------------------------

def _is_mosei(info: DatasetInfo) -> bool:
    return "mosei" in info.name.lower()


def quick_preset(info: DatasetInfo) -> dict:
    """Small (about 0.1 M parameters): trains in seconds on CPU on the built-in benchmark; alpha and c
    at the paper's MOSI values (the sensitivity sweeps' default point). Stage 2 uses the speed option
    ``expert_grad_to_inputs=False`` (frozen experts without autograd; the paper preset keeps
    autograd through them)."""
    return dict(hidden=32, heads=2, expert_depth=1, interaction_layers=1, dropout=0.1,
                alpha=0.3, cutoff_ratio=0.6, fusion_hidden=16, expert_grad_to_inputs=False)


def paper_preset(info: DatasetInfo) -> dict:
    """Paper settings (Sec. 4.3, Fig. 4): hidden 256, 2 heads, Q = 4; MOSI-like data: alpha 0.3,
    1 interaction layer, c = 0.6, dropout 0.5; MOSEI-like (``"mosei"`` in ``info.name``): alpha 0.7,
    2 layers, c = 0.4, dropout 0.4 (dropouts from the reference code,
    docs/reference-differences.md). Stage 2 freezes the
    expert parameters and keeps autograd through the experts (``expert_grad_to_inputs=True``, the
    paper; ``--set expert_grad_to_inputs=False`` is the faster no-autograd option)."""
    mosei = _is_mosei(info)
    return dict(hidden=256, heads=2, expert_depth=4, expert_ffn=256, interaction_ffn=256,
                freeze_experts=True, expert_grad_to_inputs=True,
                alpha=0.7 if mosei else 0.3, interaction_layers=2 if mosei else 1,
                cutoff_ratio=0.4 if mosei else 0.6, dropout=0.4 if mosei else 0.5)


def reference_weights_preset(info: DatasetInfo) -> dict:
    """The paper preset with the reference code's loss weights (docs/reference-differences.md, row 4)."""
    return {**paper_preset(info), **REFERENCE_LOSS_WEIGHTS}


#: Every behaviour of the public reference code (L11yc/FEMF) that mser has as a switch, on top of the
#: paper preset's sizes (docs/reference-differences.md): experts never frozen, its loss weights, its
#: cut-off rule with c = 0.9, its prediction module, one band router and one expert head per modality,
#: its expert blocks, detached auxiliary targets, the signed-cosine L_orth, reconstruction of projected
#: features, no L_dis in stage 1 and no L_train in stage 2, its hard-coded interaction (order, 2
#: layers, feed-forward width 16, alpha 0.7), cross-attention over padded utterances, ``nn.Linear``'s
#: default initialisation of the experts and routers, its disentanglement module (half-width codes, one
#: decoder, one linear map back to the model width) and its loader's vision zero-padded to 1024 columns.
REFERENCE_BEHAVIOUR = dict(
    **REFERENCE_LOSS_WEIGHTS, freeze_experts=False, cutoff_rule="reference", cutoff_ratio=0.9,
    hpm_kind="reference", router_per_band=False, expert_heads="per_modality", expert_block="reference",
    shared_head="text_expert", detach_dis_targets=True, align_detach_prediction=True,
    orth_kind="signed_cosine", rec_target="projected", dis_in_expert_stage=False, train_in_full_stage=False,
    interaction_order=REFERENCE_ORDER, interaction_layers=2, interaction_ffn=16, alpha=0.7,
    attention_key_mask=False, expert_init="torch", dis_module="reference", pad_vision_to=1024)


def reference_preset(info: DatasetInfo) -> dict:
    """The paper preset's sizes with every reference behaviour switched on (:data:`REFERENCE_BEHAVIOUR`)."""
    return {**paper_preset(info), **REFERENCE_BEHAVIOUR}


register(ModelSpec(
    name="femf", model_cls=FEMF, config_cls=FEMFConfig,
    presets={"quick": quick_preset, "paper": paper_preset, "reference_weights": reference_weights_preset,
             "reference": reference_preset},
    description="FEMF: disentanglement, DFT frequency-aware experts (2 stages), interaction, "
                "hierarchical prediction (paper 000)",
    role="method", label="FEMF", color="#4c72b0",
    # one capacity and one regularisation field; widths divisible by the quick preset's 2 heads
    search_space={"hidden": Param("choice", choices=(16, 32, 64)), "dropout": Param("float", 0.0, 0.5)},
))
