"""Packing and stacked-weight execution: how :mod:`mser_lib.models.femf` runs fast, kept apart from its equations.

Nothing here changes what FEMF computes; it changes only which tensors hold the numbers and how many
kernel calls compute them. ``femf.py`` reads against the paper; this module is the machinery under it.

What packing is. A batch holds each modality ``m`` as a padded grid ``(B, L_m, C)`` with a mask
``(B, L_m)``; for sequences of uneven length much of the grid is padding. A :class:`Segment` keeps
the *real* tokens only, as a flat ``(N_m, C)`` tensor (``N_m`` = number of True mask entries):
samples sorted by length (stably), each sample's tokens contiguous and in time order. It holds the
index maps between the two forms: :meth:`Segment.gather` (grid -> tokens), :meth:`Segment.scatter`
(tokens -> grid, zeros on padding) and :meth:`Segment.mean` (tokens -> per-sample mean ``(B, C)``).
Its :class:`Bucket` list cuts the tokens into runs of sequences attended together.

Shapes used below: ``B`` samples, ``L_m`` padded length of modality ``m``, ``N_m`` its real tokens,
``H`` model width, ``M`` modalities, ``G = 2M`` experts (band ``f`` in {0 low, 1 high} x modality
``i``, expert id ``g = f * M + i``), ``g`` experts run together (a slice of the ``G`` axis), ``n``
tokens of a contiguous range of buckets, ``Q`` expert depth.

Why it is fast.

* Every per-token layer (projections, encoders, feed-forward, LayerNorm, routers, heads) costs in
  proportion to the real tokens ``N_m``, not to ``B * L_m``.
* The ``G`` expert transformers are stored as stacked weights with a leading expert axis
  (:class:`StackedExperts`: parameters ``(Q, G, ...)``), so one layer of ``g`` experts on their
  ``(g, n, H)`` inputs is one ``torch.baddbmm`` instead of ``g`` module calls; the ``2M`` routers
  likewise (:class:`StackedRouters`). A slice of the expert axis is a view: no weight copy.
* Self-attention runs one ``scaled_dot_product_attention`` per length bucket. Because a bucket's
  sequences are contiguous, a bucket of equal-length sequences is the token block viewed as
  ``(k, L, ...)``: no copy and no mask, so PyTorch can pick its fused kernels. With more than
  :data:`MAX_BUCKETS` distinct lengths the sorted sequences are cut into ``MAX_BUCKETS`` groups,
  padded within the group (gathered with a mask, then the real rows selected back).
* :meth:`StackedExperts.chunks` bounds the working set of one batched call (``expert_chunk_mb``):
  fewer experts per call, or runs of whole buckets, when all of them at once would be too large.

How it maps to a plain per-sequence transformer. Expert ``g`` on sample ``b`` computes exactly a
post-LN transformer encoder (``Q`` blocks of self-attention + FFN, residual, LayerNorm) on
``x[b, :T_b]``, followed by a linear head: all operations but attention act on each token alone, so
the token order of the packing does not matter, and attention only ever mixes tokens of one
sequence (equal-length buckets need no mask, padded buckets mask their padding). A router is a
two-layer MLP on each token. ``tests/test_femf.py`` (``test_stacked_experts_equal_per_sequence_transformers``)
writes the expert out plainly and checks the stacked, packed, bucketed, chunked version against it;
notebook 02 does the same for a router.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import dropout as _dropout

#: At most this many length buckets per segment (exact lengths below it, padded groups above it).
MAX_BUCKETS = 8
#: On CUDA, :meth:`StackedExperts.chunks` uses at least this working-set budget (MiB) whatever
#: ``expert_chunk_mb`` says: that setting keeps a CPU's working set in its caches, and on a GPU each
#: extra chunk only repeats every layer's kernel launches (a paper-size stage-2 batch of 64 synthetic
#: sequences ran in 3 chunks per modality under the 16 MiB default, 1 under this).
CUDA_CHUNK_MB = 1024.0


def pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """Pad (with zeros) or trim dim 1 of ``x`` ``(B, L, ...)`` to ``length``."""
    cur = x.shape[1]
    if cur == length:
        return x
    if cur > length:
        return x[:, :length]
    filler = x.new_zeros((x.shape[0], length - cur, *x.shape[2:]))
    return torch.cat([x, filler], 1)


def _fix_key_mask(mask: torch.Tensor) -> torch.Tensor:
    """Key mask with position 0 allowed in rows that have no real key (avoids NaN in softmax).
    The outputs of such rows are discarded or zeroed by the caller."""
    empty = ~mask.any(-1, keepdim=True)
    if bool(empty.any()):
        mask = mask.clone()
        mask[..., :1] |= empty
    return mask


def _init_stack(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    """Stacked weight ``shape`` ``(..., fan_in, fan_out)``, Xavier-uniform per stacked matrix."""
    bound = math.sqrt(6.0 / (fan_in + shape[-1]))  # Xavier-uniform per expert
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


def torch_default_init(module: nn.Module) -> None:
    """Re-initialise ``module``'s stacked weights and biases (:class:`StackedExperts`, :class:`StackedRouters`: each
    weight ``(..., fan_in, fan_out)`` with its bias ``(..., fan_out)`` of the same name but ``b``) as ``nn.Linear``
    does by default: both uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` (kaiming_uniform with a = sqrt(5)). The
    public FEMF reference builds its experts and routers from ``nn.Linear`` with that default; mser's default is
    Xavier-uniform weights and zero biases (:func:`_init_stack`). LayerNorm parameters are left at 1 and 0."""
    with torch.no_grad():
        for name, w in list(module.named_parameters(recurse=False)):
            if name == "head_w" or (name.startswith("w") and w.dim() >= 2):     # wqkv, wo, w1, w2, head_w
                bound = 1.0 / math.sqrt(w.shape[-2])
                w.uniform_(-bound, bound)
                getattr(module, "head_b" if name == "head_w" else "b" + name[1:]).uniform_(-bound, bound)


def to_layout(values: torch.Tensor, position: bool, label_mask: torch.Tensor) -> torch.Tensor:
    """Position layout: ``(N_lab, C)`` values at labelled positions (``label_mask`` ``(B, L)``, row-major
    order) -> ``(B, L, C)`` (zeros elsewhere). Sequence layout: returned unchanged."""
    if not position:
        return values
    B, L = label_mask.shape
    idx = torch.nonzero(label_mask.reshape(-1)).squeeze(1)
    grid = values.new_zeros(B * L, values.shape[-1]).index_copy_(0, idx, values)
    return grid.view(B, L, -1)


class Bucket:
    """Sequences of one segment attended together: tokens ``[a, e)`` of the segment (``k``
    sequences, padded length ``L``). ``gather``/``mask``/``real`` are ``None`` when every sequence
    has length ``L`` (the tokens are then viewed as ``(k, L)`` with no copy and no mask).

    Otherwise ``gather``: ``(k * L,)`` token indices (relative to ``a``) laying the bucket out as
    ``(k, L)``, padding slots repeating their sequence's last token; ``mask``: ``(k, L)`` real
    slots; ``real``: indices of the real slots in the flattened ``(k * L)`` layout. ``samples``:
    ``(k,)`` the sample of each sequence.
    """

    def __init__(self, a, e, k, L, gather=None, mask=None, real=None, samples=None):
        self.a, self.e, self.k, self.L = a, e, k, L
        self.gather, self.mask, self.real, self.samples = gather, mask, real, samples


class Segment:
    """The real tokens of one modality, packed: samples sorted by length, each sample's tokens
    contiguous and in time order (so sequences of equal length form zero-copy attention batches).

    Built from the modality's ``(B, L_m)`` mask; ``j`` is the modality's index in the model.
    ``idx``: (N_m,) flat indices into that modality's ``(B * L_m)`` padded grid;
    ``sample``: (N_m,) sample of each token; ``start``/``stop``: rows of the modality in the
    concatenation of all modalities' tokens (stage 2); ``key_mask``: (B, L_m) attention key mask
    (rows without real keys fixed to position 0, see :func:`_fix_key_mask`); ``present``: (B,);
    ``buckets``: the :class:`Bucket` list covering the tokens (exact lengths when there are at
    most ``MAX_BUCKETS`` distinct lengths, else ``MAX_BUCKETS`` length-sorted groups, padded).
    """

    def __init__(self, j: int, mask: torch.Tensor, start: int):
        self.j = j
        self.B, self.L = mask.shape
        self.mask = mask
        dev = mask.device
        lengths = mask.sum(1)
        order = torch.argsort(lengths, stable=True)
        rows, cols = torch.nonzero(mask.index_select(0, order), as_tuple=True)
        self.idx = order.index_select(0, rows) * self.L + cols
        self.n = int(self.idx.numel())
        self.start = start
        self.stop = start + self.n
        self.sample = torch.div(self.idx, self.L, rounding_mode="floor")
        self.present = lengths > 0
        self.key_mask = _fix_key_mask(mask)
        self._count = None
        # buckets over the sorted non-empty sequences
        lens_sorted = lengths.index_select(0, order).tolist()
        z = lens_sorted.count(0)                    # sorted ascending: the empty sequences come first
        seq_len = lens_sorted[z:]
        seq_sample = order[z:]
        self.buckets: list[Bucket] = []
        if not seq_len:
            return
        starts = [0]
        for t in seq_len[:-1]:
            starts.append(starts[-1] + t)
        uniq = sorted(set(seq_len))
        if len(uniq) <= MAX_BUCKETS:
            groups, i = [], 0
            for t in uniq:
                k = seq_len.count(t)
                groups.append((i, i + k))
                i += k
        else:
            n_seq = len(seq_len)
            cuts = [round(n_seq * q / MAX_BUCKETS) for q in range(MAX_BUCKETS + 1)]
            groups = [(cuts[q], cuts[q + 1]) for q in range(MAX_BUCKETS) if cuts[q + 1] > cuts[q]]
        # the padded buckets' index maps are built on the host from the lengths (already there) and sent
        # in one copy: no small kernels, and on CUDA no wait for the device per bucket
        padded, host = [], []
        for i0, i1 in groups:
            lens = seq_len[i0:i1]
            a = starts[i0]
            e = starts[i1 - 1] + lens[-1]
            Lb, k = max(lens), i1 - i0
            self.buckets.append(Bucket(a, e, k, Lb, samples=seq_sample[i0:i1]))
            if min(lens) == Lb:
                continue
            lt = np.asarray(lens)[:, None]
            pos = np.arange(Lb)[None, :]
            bmask = pos < lt                                                     # (k, Lb)
            gather = (np.asarray(starts[i0:i1])[:, None] - a) + np.minimum(pos, lt - 1)  # stays in its sequence
            real = np.flatnonzero(bmask)
            padded.append((self.buckets[-1], k * Lb, real.size))
            host += [gather.reshape(-1), bmask.reshape(-1), real]
        if padded:
            flat = torch.from_numpy(np.concatenate(host).astype(np.int64)).to(dev)
            i = 0
            for bk, kl, nr in padded:
                bk.gather, bk.mask = flat[i:i + kl], flat[i + kl:i + 2 * kl].view(bk.k, bk.L).bool()
                bk.real = flat[i + 2 * kl:i + 2 * kl + nr]
                i += 2 * kl + nr

    def scatter(self, tok: torch.Tensor) -> torch.Tensor:
        """``(N_m, C)`` tokens -> ``(B, L_m, C)`` grid, zeros on padding."""
        C = tok.shape[-1]            # in place into fresh zeros: the out-of-place index_copy clones them first
        return tok.new_zeros(self.B * self.L, C).index_copy_(0, self.idx, tok).view(self.B, self.L, C)

    def gather(self, grid: torch.Tensor) -> torch.Tensor:
        """``(B, L_m, C)`` grid -> ``(N_m, C)`` tokens."""
        return grid.reshape(self.B * self.L, -1).index_select(0, self.idx)

    def mean(self, tok: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` per-sample mean of the tokens (zeros for a sample without tokens)."""
        if self._count is None:
            self._count = torch.bincount(self.sample, minlength=self.B).clamp_min(1)
        tot = tok.new_zeros(self.B, tok.shape[-1]).index_add_(0, self.sample, tok)
        return tot / self._count.unsqueeze(1).to(tok.dtype)

    def per_sample(self, tok: torch.Tensor, position: bool) -> torch.Tensor:
        """Token values ``(N_m, C)`` -> ``(B, L_m, C)`` grid (position layout) or per-sample mean ``(B, C)``."""
        return self.scatter(tok) if position else self.mean(tok)


# --------------------------------------------------------------------------------------------
# experts: G = 2 bands x M modalities stacked transformer encoders (post-LN) with heads
# --------------------------------------------------------------------------------------------

class StackedExperts(nn.Module):
    """The 2 x M frequency-specific modality experts of eq. 9, stored with a leading expert axis.

    Expert ``g = f * M + i`` is the expert of band ``f`` (0 low, 1 high) and modality ``i``. Each
    is ``depth`` blocks plus a linear head. Parameters have shape ``(depth, G, ...)`` (heads
    ``(G, ...)``); every layer is one ``baddbmm`` over all experts at once.

    ``block="paper"``: post-LN transformer encoder blocks (self-attention with output projection,
    residual, LayerNorm; ReLU FFN, residual, LayerNorm). ``block="reference"``: the public FEMF code's
    block (its ``Attention``): ``a = MHA(x)`` without an output projection, ``x + a + MLP(a)`` with a GELU
    MLP and dropout after each of its layers, no LayerNorm. ``heads_per_band=False``: one head per
    modality, shared by its two bands (the reference's ``nlp_head_<m>``); expert ``g`` then uses head
    ``g % M``.
    """

    _PARAMS = {"paper": ("wqkv", "bqkv", "wo", "bo", "ln1_w", "ln1_b", "w1", "b1", "w2", "b2", "ln2_w", "ln2_b"),
               "reference": ("wqkv", "bqkv", "w1", "b1", "w2", "b2")}

    def __init__(self, n_mod: int, hidden: int, heads: int, depth: int, ffn: int, out_dim: int,
                 attn_dropout: float = 0.0, block: str = "paper", heads_per_band: bool = True):
        super().__init__()
        self.attn_dropout = attn_dropout
        if hidden % heads:
            raise ValueError(f"hidden {hidden} must be divisible by heads {heads}")
        if block not in self._PARAMS:
            raise ValueError(f"block must be one of {sorted(self._PARAMS)}, got {block!r}")
        G, H, Fw, Q = 2 * n_mod, hidden, ffn, depth
        self.n_mod, self.G, self.H, self.heads, self.depth, self.ffn = n_mod, G, H, heads, depth, Fw
        self.block, self.heads_per_band = block, heads_per_band
        paper = block == "paper"
        self.wqkv = _init_stack((Q, G, H, 3 * H), H)
        self.bqkv = nn.Parameter(torch.zeros(Q, G, 3 * H))
        if paper:
            self.wo = _init_stack((Q, G, H, H), H)
            self.bo = nn.Parameter(torch.zeros(Q, G, H))
            self.ln1_w = nn.Parameter(torch.ones(Q, G, H))
            self.ln1_b = nn.Parameter(torch.zeros(Q, G, H))
        self.w1 = _init_stack((Q, G, H, Fw), H)
        self.b1 = nn.Parameter(torch.zeros(Q, G, Fw))
        self.w2 = _init_stack((Q, G, Fw, H), Fw)
        self.b2 = nn.Parameter(torch.zeros(Q, G, H))
        if paper:
            self.ln2_w = nn.Parameter(torch.ones(Q, G, H))
            self.ln2_b = nn.Parameter(torch.zeros(Q, G, H))
        n_heads = G if heads_per_band else n_mod
        self.head_w = _init_stack((n_heads, H, out_dim), H)
        self.head_b = nn.Parameter(torch.zeros(n_heads, out_dim))

    @staticmethod
    def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(b.unsqueeze(1), F.layer_norm(x, x.shape[-1:]), w.unsqueeze(1))

    def chunks(self, s: Segment, groups: list[int], budget_mb: float) -> list[tuple[slice, int, int]]:
        """Split the work of experts ``groups`` on segment ``s`` into chunks ``(slice, b_lo, b_hi)``
        whose largest intermediate (``g x tokens x max(3H, ffn)`` floats) stays under
        ``budget_mb`` MiB: all experts at once when it fits, else fewer experts per chunk (on the CPU a
        multiple of the intra-op threads where more than that many but not all fit), else
        (one expert) runs of whole length buckets. ``groups`` is an arithmetic progression of expert
        ids: ``range(2M)`` (stage 2) or ``[j, M + j]`` (stage 1)."""
        row = max(3 * self.H, self.ffn) * 4
        if s.mask.is_cuda:       # on a GPU the budget is not about caches; chunks only cost launches
            budget_mb = max(budget_mb, CUDA_CHUNK_MB)
        budget = max(int(budget_mb * 2 ** 20), row)
        nb = len(s.buckets)
        per = max(1, budget // max(1, s.n * row))
        threads = torch.get_num_threads()
        if not s.mask.is_cuda and threads < per < len(groups):
            # a batched matmul on the CPU splits its batch of experts over the intra-op threads: 3 experts on 2
            # threads left one idle for a third of every layer (a paper stage-2 step at 2 threads took 1.10 times
            # as long, benchmarks/results/femf_cpu_side_by_side_t2.md); a multiple of the threads keeps them busy
            per -= per % threads
        step = groups[1] - groups[0] if len(groups) > 1 else 1       # groups: arithmetic progression
        if per > 1 or len(groups) == 1:
            return [(slice(groups[i], groups[min(i + per, len(groups)) - 1] + 1, step), 0, nb)
                    for i in range(0, len(groups), per)]
        token_runs, lo, size = [], 0, 0
        max_tok = max(1, budget // row)
        for b, bk in enumerate(s.buckets):
            n = bk.e - bk.a
            if size and size + n > max_tok:
                token_runs.append((lo, b))
                lo, size = b, 0
            size += n
        token_runs.append((lo, nb))
        return [(slice(g, g + 1), lo, hi) for g in groups for lo, hi in token_runs]

    @staticmethod
    def new_maps(s: Segment, ref: torch.Tensor) -> dict:
        """Zeroed attention-map grids ``{(band, s.j): (B, L_m, L_m)}`` of the segment's own experts,
        filled by :meth:`run_chunk` (dtype and device of ``ref``)."""
        return {(f, s.j): ref.new_zeros(s.B, s.L, s.L) for f in range(2)}

    def run_chunk(self, s: Segment, gs: slice, lo: int, hi: int, inputs, dropout: float,
                  maps: dict | None) -> tuple[list[int], torch.Tensor, tuple[int, int]]:
        """Experts ``gs`` on buckets ``[lo, hi)`` of ``s`` (one chunk of :meth:`chunks`); ``inputs[f]``
        are the segment's band-f tokens ``(N_m, H)``, expert ``g`` reads band ``g // M``; ``maps``:
        ``None`` or :meth:`new_maps`'s grids, filled for the segment's own experts.
        Returns (list of expert ids, ``(g, n, H)`` outputs, token range ``(a, e)`` of the ``n`` tokens)."""
        M = self.n_mod
        gids = list(range(gs.start, gs.stop, gs.step or 1))
        a, e = s.buckets[lo].a, s.buckets[hi - 1].e
        x = torch.stack([inputs[g // M][a:e] for g in gids], 0)
        rows = None
        if maps is not None:
            rows = {r: maps[(g // M, s.j)] for r, g in enumerate(gids) if g % M == s.j}
        return gids, self.run(x, s, gs, lo, hi, dropout, rows), (a, e)

    def run(self, x: torch.Tensor, s: Segment, groups: slice, b_lo: int, b_hi: int, dropout: float,
            maps: dict | None = None) -> torch.Tensor:
        """Run the experts ``groups`` (a slice of the expert axis) on tokens of segment ``s``.

        Args:
            x: ``(g, n, H)``: for each expert of the slice, the tokens of buckets
                ``s.buckets[b_lo:b_hi]`` (a contiguous token range of the segment).
            s: the segment (one modality's real tokens, see :class:`Segment`).
            groups: which experts (``slice`` over ``g = f * M + i``; weights are views, no copy).
            dropout: dropout probability (0 for frozen experts and in eval mode).
            maps: ``{row of the slice: (B, L, L) grid}`` to fill with the last layer's
                head-averaged attention probabilities, or ``None``.

        Returns:
            ``(g, n, H)`` expert outputs (eq. 11's ``e_i(x)``).
        """
        p = self.layer_params(groups)
        for q in range(self.depth):
            last = maps is not None and q == self.depth - 1
            qkv = torch.baddbmm(p["bqkv"][q], x, p["wqkv"][q])
            a = self._sdpa(qkv, s, b_lo, b_hi, maps if last else None)
            if self.block == "reference":             # x + a + MLP(a), MLP = drop(fc2(drop(gelu(fc1 a))))
                f = _dropout(F.gelu(torch.baddbmm(p["b1"][q], a, p["w1"][q])), dropout, self.training)
                f = _dropout(torch.baddbmm(p["b2"][q], f, p["w2"][q]), dropout, self.training)
                x = x + a + f
                continue
            a = torch.baddbmm(p["bo"][q], a, p["wo"][q])
            x = self._ln(x + _dropout(a, dropout, self.training), p["ln1_w"][q], p["ln1_b"][q])
            f = F.relu(torch.baddbmm(p["b1"][q], x, p["w1"][q]))
            f = torch.baddbmm(p["b2"][q], _dropout(f, dropout, self.training), p["w2"][q])
            x = self._ln(x + _dropout(f, dropout, self.training), p["ln2_w"][q], p["ln2_b"][q])
        return x

    def layer_params(self, groups: slice) -> dict[str, tuple[torch.Tensor, ...]]:
        """Each layer parameter of experts ``groups``, as one view per depth ``q``: ``{name: (Q views)}``,
        weights ``(g, in, out)``, biases ``(g, 1, out)`` and LayerNorm ``(g, H)``.

        One slice and one ``unbind`` per parameter for the whole call rather than an index per layer:
        the backward of every index writes a zero-filled gradient of the whole stacked parameter (a fill
        and a copy kernel each), while an ``unbind``'s backward stacks the depth's gradients once. On CUDA
        such launches, not arithmetic, bound a step (``benchmarks/results/cuda_checks_h100_cuda.md``)."""
        full = (groups.start or 0) == 0 and groups.stop >= self.G and (groups.step or 1) == 1
        out = {}
        for name in self._PARAMS[self.block]:
            t = getattr(self, name)
            t = t if full else t[:, groups]
            if name[0] == "b":                                   # biases broadcast over tokens
                t = t.unsqueeze(2)
            out[name] = t.unbind(0)
        return out

    def head_one(self, g: int, tok: torch.Tensor) -> torch.Tensor:
        """``(n, out)``: eq. 9's FC of expert ``g`` on tokens ``(n, H)`` (head ``g % M`` when the bands share
        one head per modality)."""
        h = g if self.heads_per_band else g % self.n_mod
        return torch.addmm(self.head_b[h], tok, self.head_w[h])

    def _sdpa(self, src: torch.Tensor, s: Segment, b_lo: int, b_hi: int, maps: dict | None) -> torch.Tensor:
        """Self-attention within each sequence, one ``scaled_dot_product_attention`` per length
        bucket. ``src``: ``(g, n, 3H)`` packed q|k|v of buckets ``[b_lo, b_hi)``; returns ``(g, n, H)``."""
        g = src.shape[0]
        H, nh = self.H, self.heads
        dh = H // nh
        if src.shape[1] == 0:
            return src.new_zeros(g, 0, H)
        p = self.attn_dropout if self.training else 0.0
        buckets = s.buckets[b_lo:b_hi]
        # one split, not a slice per bucket: each slice's backward would write a zero-filled copy of
        # the whole (g, n, 3H) gradient (measured: up to half of a paper-size stage-2 step)
        parts = torch.split(src, [bk.e - bk.a for bk in buckets], 1)
        outs = []
        for bk, part in zip(buckets, parts):
            if bk.gather is not None:
                part = part.index_select(1, bk.gather)
            q, k, v = part.reshape(g * bk.k, bk.L, 3, nh, dh).permute(2, 0, 3, 1, 4).unbind(0)
            mask = None
            if bk.mask is not None:
                mask = bk.mask.view(1, bk.k, 1, 1, bk.L).expand(g, -1, -1, -1, -1)
                mask = mask.reshape(g * bk.k, 1, 1, bk.L)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            o = o.transpose(1, 2).reshape(g, bk.k * bk.L, H)
            if bk.real is not None:
                o = o.index_select(1, bk.real)
            outs.append(o)
            if maps:
                with torch.no_grad():
                    sc = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
                    if mask is not None:
                        sc = sc.masked_fill(~mask, float("-inf"))
                    sc = sc.softmax(-1).mean(1).view(g, bk.k, bk.L, bk.L)
                    for row, grid in maps.items():
                        grid[bk.samples, :bk.L, :bk.L] = sc[row]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


class StackedRouters(nn.Module):
    """The 2 x M soft routers of eq. 12-13: router ``(f, m)`` (index ``f * M + m``) is a two-layer MLP
    mapping ``[x_m^f ; anchor]`` to M expert scores, softmax-normalised. Stacked weights ``(2M, ...)``;
    ``per_band=False``: one router per modality for both bands (the reference's ``router_<m>``), ``(M, ...)``."""

    def __init__(self, n_mod: int, in_dim: int, hidden: int, per_band: bool = True):
        super().__init__()
        R = 2 * n_mod if per_band else n_mod
        self.n_mod, self.per_band = n_mod, per_band
        self.w1 = _init_stack((R, in_dim, hidden), in_dim)
        self.b1 = nn.Parameter(torch.zeros(R, hidden))
        self.w2 = _init_stack((R, hidden, n_mod), hidden)
        self.b2 = nn.Parameter(torch.zeros(R, n_mod))

    def forward(self, inp: torch.Tensor, j: int, dropout: float) -> torch.Tensor:
        """``inp``: ``(2, N_j, in)`` router inputs of modality ``j`` for (low, high);
        returns softmax weights ``(2, N_j, M)`` (eq. 13)."""
        sel = [j, self.n_mod + j] if self.per_band else [j, j]     # per_band=False: one router for both bands
        h = F.relu(torch.baddbmm(self.b1[sel].unsqueeze(1), inp, self.w1[sel]))
        h = _dropout(h, dropout, self.training)
        return torch.baddbmm(self.b2[sel].unsqueeze(1), h, self.w2[sel]).softmax(-1)
