"""MulT: the Multimodal Transformer for unaligned multimodal language sequences (Tsai, Bai, Liang, Kolter,
Morency, Salakhutdinov, ACL 2019), a baseline of Atsuko's Table 1 and Table 3, read against the paper and
against thuiar/MMSA's copy of the authors' code (``models/singleTask/MULT.py``,
``subNets/transformers_encoder/transformer.py``, the ``mult`` entry of ``config/config_regression.json``).

The paper's parts (its section 3), for one sample, modality ``m`` in (L = text, A = audio, V = vision)::

    X^_m    = Conv1D(drop_L(X_L) | X_A | X_V, k_m)                (L_m, d)     temporal convolution, 3.2
    Z_m[0]  = sqrt(d) X^_m + PE(L_m) -> embedding dropout                       positional embedding, 3.2
    -- crossmodal transformer CM_{s -> t}, D layers (3.1, 3.2): the target t attends to the source s ------
    Z[i]^   = Z[i-1] + MHA( Q = LN(Z[i-1]), K = V = LN(Z_s[0]) )          keys always from the source's
    Z[i]    = Z[i]^ + FFN( LN(Z[i]^) )                                    level-0 features (low-level)
    Z_{s->t} = LN(Z[D])                                                   (L_t, d)
    -- six crossmodal transformers, then one self-attention transformer per target (3.3) ---------------
    Z_t     = [Z_{s1->t}; Z_{s2->t}]                                      (L_t, 2d)
    H_t     = SelfAttnTransformer_t(Z_t)                                  (L_t, 2d)
    h       = [H_L[last]; H_A[last]; H_V[last]]                           (6d,)
    y^      = W_o (h + W_2 drop(ReLU(W_1 h)))                             residual block, then the output

The six crossmodal transformers (A->L, V->L, L->A, V->A, L->V, A->V) are what makes MulT: every modality
reads the other two without any alignment of their time steps (``tests/test_mult.py`` checks that the
target's output depends on the source only through the attention, and on every source position).

Shapes. Sequence layout: ``X_m`` ``(B, L_m, d_m)`` with real lengths from the masks, unaligned; the
prediction is ``(B,)`` from the last real position of each self-attention transformer. Position layout
(mosi-bclstm: a sample is a video, each position an utterance with one vector per modality): the
transformers run over the utterances of the video, every position attends to every real position, and
every labelled position gets a prediction from ``[H_L; H_A; H_V]`` at that position, ``(B, P)``.

Where mser differs from the code (``docs/baselines.md``, "MulT"):

* Padding is masked: the convolutions use "same" padding and zero the padded steps, attention never reads
  a padded step, and the sequence summary is the last real step. The code pads every sequence to the
  dataset length, attends with a causal ("future") mask over the padding, and reads the last padded step.
* The source of a crossmodal transformer is embedded once, so its keys and values share one embedding-dropout mask;
  the code embeds (and drops out) keys and values separately.
* Positional embeddings are on, as the paper's section 3.2 and the authors' code have them; MMSA's copy
  builds its encoders with ``position_embedding=False`` (no positions). mser's sinusoids interleave sine and
  cosine (``atsuko.sinusoid``); the authors' fairseq embedding puts the sines first and counts from 1.
* A missing modality (robustness study, every step masked) is read as zeros by the others' crossmodal
  transformers and its own stream is zeroed before the output block.
* The optimiser and budget are mser's common protocol (``mser_lib/configs/quick.yaml``); MMSA's trainer
  accumulates 8 batches per step and clips each gradient value at 0.6, which the common protocol does not.

Text is the dataset's given text features (as for Atsuko and EMOE); MMSA can fine-tune BERT instead
(``use_bert``, off in its MOSI configuration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks
from ..data.batch import MODALITIES, Batch, DatasetInfo
from .atsuko import sinusoid
from .base import ModelOutput, dropout
from .registry import ModelSpec, Param, register

#: target -> its two sources, in MMSA's order (text reads audio then vision, ...)
SOURCES = {"text": ("audio", "vision"), "audio": ("text", "vision"), "vision": ("text", "audio")}


@dataclass
class MulTConfig:
    """MMSA's MOSI values as defaults (``dst_feature_dim_nheads`` [50, 10], ``nlevels`` 4).

    ``attn_dropout`` is the attention dropout of the crossmodal transformers whose source is text and of the
    three self-attention transformers; ``attn_dropout_audio`` / ``attn_dropout_vision`` those reading audio /
    vision (MMSA's ``attn_dropout_a`` / ``attn_dropout_v``: its ``get_network('la')``, text with audio, takes
    ``attn_dropout_a``). ``memory_layers``: the depth of the
    three self-attention transformers, ``max(nlevels, 3)`` in the code."""

    d_model: int = 50
    num_heads: int = 10
    num_layers: int = 4
    memory_layers: int = 4
    conv_kernel_text: int = 5
    conv_kernel_audio: int = 5
    conv_kernel_vision: int = 5
    text_dropout: float = 0.5
    attn_dropout: float = 0.3
    attn_dropout_audio: float = 0.2
    attn_dropout_vision: float = 0.0
    relu_dropout: float = 0.0
    res_dropout: float = 0.0
    embed_dropout: float = 0.2
    output_dropout: float = 0.5

    def __post_init__(self) -> None:
        checks.check_types(self)
        for name in ("d_model", "num_heads", "num_layers", "memory_layers", "conv_kernel_text", "conv_kernel_audio",
                     "conv_kernel_vision"):
            checks.integer(self, name, 1)
        if self.d_model % self.num_heads:
            raise checks.ConfigError(type(self).__name__, "d_model", self.d_model,
                                     f"a multiple of num_heads ({self.num_heads})")
        for name in ("conv_kernel_text", "conv_kernel_audio", "conv_kernel_vision"):
            if getattr(self, name) % 2 == 0:
                raise checks.ConfigError(type(self).__name__, name, getattr(self, name),
                                         'an odd kernel size ("same" padding keeps every step)')
        checks.dropouts(self, "text_dropout", "attn_dropout", "attn_dropout_audio", "attn_dropout_vision",
                        "relu_dropout", "res_dropout", "embed_dropout", "output_dropout")


def _linear(d_in: int, d_out: int) -> nn.Linear:
    """Xavier-uniform weight, zero bias: the authors' ``Linear`` and attention projections."""
    lin = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class CrossmodalLayer(nn.Module):
    """One pre-LN layer: attention of the target ``x`` over ``source`` (itself when ``source`` is None),
    then a ReLU feed-forward of width ``4 d``. One LayerNorm serves query, keys and values, as in the code.

    ``x`` (B, L_t, d), ``source`` (B, L_s, d), ``key_mask`` (B, L_s) bool (True = may be attended) ->
    (B, L_t, d)."""

    def __init__(self, d: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.heads = heads
        self.q = _linear(d, d)
        self.kv = _linear(d, 2 * d)
        self.out = _linear(d, d)
        self.ln_attn = nn.LayerNorm(d)
        self.ln_ffn = nn.LayerNorm(d)
        self.fc1 = _linear(d, 4 * d)
        self.fc2 = _linear(4 * d, d)
        self.attn_dropout, self.relu_dropout, self.res_dropout = attn_dropout, relu_dropout, res_dropout

    def forward(self, x: torch.Tensor, source: torch.Tensor | None, key_mask: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q_in = self.ln_attn(x)
        kv_in = q_in if source is None else self.ln_attn(source)
        S, dh = kv_in.shape[1], d // self.heads
        q = self.q(q_in).view(B, L, self.heads, dh).transpose(1, 2)
        k, v = self.kv(kv_in).view(B, S, 2, self.heads, dh).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :],
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + dropout(self.out(h.transpose(1, 2).reshape(B, L, d)), self.res_dropout, self.training)
        h = dropout(F.relu(self.fc1(self.ln_ffn(x))), self.relu_dropout, self.training)
        return x + dropout(self.fc2(h), self.res_dropout, self.training)


class CrossmodalTransformer(nn.Module):
    """``CM_{s -> t}`` with ``layers`` layers (the self-attention transformer when called without a
    source): ``sqrt(d) x + PE`` and embedding dropout on the target and on the source, the layers, a final
    LayerNorm. ``(B, L_t, d)`` -> ``(B, L_t, d)``."""

    def __init__(self, d: int, heads: int, layers: int, attn_dropout: float, cfg: MulTConfig):
        super().__init__()
        self.layers = nn.ModuleList(CrossmodalLayer(d, heads, attn_dropout, cfg.relu_dropout, cfg.res_dropout)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.scale = math.sqrt(d)
        self.embed_dropout = cfg.embed_dropout

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        h = x * self.scale + sinusoid(x.shape[1], x.shape[2], x.device, x.dtype)[None]
        return dropout(h, self.embed_dropout, self.training)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, source: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``key_mask`` (B, L_s): the real steps of the source (of ``x`` itself without a source)."""
        h = self._embed(x)
        src = None if source is None else self._embed(source)
        for layer in self.layers:
            h = layer(h, src, key_mask)
        return self.norm(h)


def _key_mask(mask: torch.Tensor) -> torch.Tensor:
    """Real steps may be attended; a sample with no real step (missing modality) attends to all of its
    zero steps, so that no softmax row is empty."""
    return mask | ~mask.any(1, keepdim=True)


class MulT(nn.Module):
    """The Multimodal Transformer. ``forward(batch)``: prediction ``(B,)`` (sequence layout) or ``(B, P)``
    (position layout); logits with a trailing class axis for classification."""

    def __init__(self, info: DatasetInfo, config: MulTConfig):
        super().__init__()
        self.info, self.config = info, config
        d = config.d_model
        attn = {"text": config.attn_dropout, "audio": config.attn_dropout_audio,
                "vision": config.attn_dropout_vision}
        self.convs = nn.ModuleDict({m: nn.Conv1d(info.dims[m], d, getattr(config, f"conv_kernel_{m}"),
                                                 padding=getattr(config, f"conv_kernel_{m}") // 2, bias=False)
                                    for m in MODALITIES})
        self.cross = nn.ModuleDict({f"{s}_to_{t}": CrossmodalTransformer(d, config.num_heads, config.num_layers,
                                                                          attn[s], config)
                                    for t in MODALITIES for s in SOURCES[t]})
        self.memory = nn.ModuleDict({t: CrossmodalTransformer(2 * d, config.num_heads, config.memory_layers,
                                                              config.attn_dropout, config)
                                     for t in MODALITIES})
        combined = 6 * d
        self.proj1 = _linear(combined, combined)
        self.proj2 = _linear(combined, combined)
        self.head = _linear(combined, info.num_classes if info.task == "classification" else 1)

    def streams(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``H_t`` of every target ``t``, ``(B, L_t, 2d)``, zero on padded steps and on missing modalities."""
        masks = {m: batch.mask(m) for m in MODALITIES}
        x = {}
        for m in MODALITIES:
            feats = batch.features(m)
            if m == "text":
                feats = dropout(feats, self.config.text_dropout, self.training)
            keep = masks[m][..., None].to(feats.dtype)
            x[m] = self.convs[m]((feats * keep).transpose(1, 2)).transpose(1, 2) * keep     # (B, L_m, d)
        keys = {m: _key_mask(masks[m]) for m in MODALITIES}
        out = {}
        for t in MODALITIES:
            z = torch.cat([self.cross[f"{s}_to_{t}"](x[t], keys[s], x[s]) for s in SOURCES[t]], -1)
            keep = masks[t][..., None].to(z.dtype)                   # masks are False where t is missing
            out[t] = self.memory[t](z, keys[t]) * keep                                       # (B, L_t, 2d)
        return out

    def forward(self, batch: Batch) -> ModelOutput:
        H = self.streams(batch)
        if batch.layout == "sequence":
            B = len(batch)
            rows = torch.arange(B, device=H["text"].device)
            last = {t: (batch.mask(t).sum(1) - 1).clamp_min(0) for t in MODALITIES}
            h = torch.cat([H[t][rows, last[t]] for t in MODALITIES], -1)                     # (B, 6d)
        else:
            P = batch.label_mask.shape[1]
            h = torch.cat([H[t][:, :P] for t in MODALITIES], -1)                             # (B, P, 6d)
        h = h + self.proj2(dropout(F.relu(self.proj1(h)), self.config.output_dropout, self.training))
        out = self.head(h)
        return ModelOutput(prediction=out.squeeze(-1) if self.info.task == "regression" else out)


def _paper(info: DatasetInfo) -> dict:
    """MMSA's ``config_regression.json`` for the dataset (MOSI's for mosi-bclstm and the built-in data)."""
    if info.name.startswith("mosei"):
        return {"d_model": 30, "num_heads": 6, "conv_kernel_audio": 1, "conv_kernel_vision": 3,
                "text_dropout": 0.3, "attn_dropout": 0.4, "attn_dropout_audio": 0.0, "embed_dropout": 0.0}
    if info.name == "sims":
        return {"num_layers": 2, "memory_layers": 3, "conv_kernel_audio": 1, "conv_kernel_vision": 1,
                "text_dropout": 0.3, "attn_dropout": 0.2, "attn_dropout_audio": 0.1, "embed_dropout": 0.1,
                "res_dropout": 0.2, "output_dropout": 0.1}
    if info.name == "simsv2":
        return {"d_model": 30, "num_heads": 6, "conv_kernel_audio": 3, "conv_kernel_vision": 1,
                "relu_dropout": 0.1, "attn_dropout": 0.1, "output_dropout": 0.3}
    return {}


def _quick(info: DatasetInfo) -> dict:
    """A small stand-in for the built-in benchmark. No attention dropout: on a CPU it sends attention down
    PyTorch's unfused path, which doubled the quick model's training step."""
    return {"d_model": 16, "num_heads": 2, "num_layers": 1, "memory_layers": 1, "conv_kernel_text": 3,
            "conv_kernel_audio": 3, "conv_kernel_vision": 3, "attn_dropout": 0.0, "attn_dropout_audio": 0.0}


register(ModelSpec("mult", MulT, MulTConfig, {"quick": _quick, "paper": _paper},
                   "Multimodal Transformer (Tsai et al., 2019), read against MMSA's copy of the authors' code",
                   role="baseline", label="MulT", color="#17becf",
                   search_space={"num_layers": Param("choice", choices=(2, 3, 4)),
                                 "output_dropout": Param("float", 0.0, 0.5)}))

__all__ = ["MulT", "MulTConfig", "CrossmodalLayer", "CrossmodalTransformer", "SOURCES"]
