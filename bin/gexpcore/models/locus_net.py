"""locus_net: one network shared by all genes, trained on every (gene, training sample) pair.

The proof of concept's network had one output per gene and a few dozen samples to learn
each from. Here every (gene, sample) pair is one example of a single small network, so a
cohort of 14 samples and 11,000 genes gives 150,000 of them. It learns what the mixture
(mixture.py) misses at a locus:

- the mixture: the sample's gene activity profile as a non-negative combination of the
  training samples' (each training sample's from the others, as it will be used), and its
  expression predicted as the same combination of theirs;
- inputs, per pair: three channels of the sample's strand-oriented TSS window at bin
  resolution (±window): the window, its difference from the mixture's window, and its
  z-score against the training samples' window at each position (how unusual the locus is
  in this sample, on a scale shared by all genes); and scalars: how well the mixture
  explains the sample (relative residual of its activity profile) and the locus (mean
  absolute window difference), the mixture's prediction, and the gene's training mean and
  spread;
- output: the mixture's residual in units of the gene's spread, so the prediction is
  the mixture's plus the network's correction. The last layer starts at zero: before
  training, locus_net is the mixture. The loss is mostly on each gene's differences
  between samples, what per-gene r across samples scores (_loss).

Architecture (ours; centring a window on the TSS follows sequence-to-expression models
such as Basenji and Enformer, on accessibility rather than sequence): one linear layer
projects the three channels onto 32 learned bin-resolution profiles, then a two-layer head
over those and the scalars. A first variant convolved the window twice (16 filters of 9
bins, pooled) and was trained on plain squared error: 16 times the time per fit for a lower
score on the blood cohort (0.472 against this one's 0.513; every variant is in
benchmarks/real.md), too slow to train inside every fold of nested CV.
Batches are blocks of genes × all samples cut from a sparse (genes·samples) × window matrix
(windows.py), so nothing beyond one batch is dense. Early stopping holds out whole groups
of training samples (20 %, at least one sample), never genes of the same samples; their
mixtures use the other training samples only. Seeds are fixed and the CPU runs
deterministically (train.py); CUDA uses mixed precision (neural.train).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .base import Context, Model
from .gene_activity import gene_activity, gene_activity_weights
from .mixture import _mixture
from .neural import _checkpoint_key, train
from .windows import WindowIndex

log = logging.getLogger("gexp")

GENES_PER_BATCH = 256
EPOCHS = 12
PATIENCE = 2
SCALARS = 5
CHANNELS = 3
OFFSET_WEIGHT = 0.1
PROFILES = 32  # learned bin-resolution profiles the first layer projects each window onto


class _Net(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.profiles = nn.Sequential(
            nn.Flatten(), nn.Linear(CHANNELS * width, PROFILES), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Linear(PROFILES + SCALARS, 32), nn.ReLU(), nn.Linear(32, 1))
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)
        self.width = width

    def forward(self, windows: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.profiles(windows), scalars], dim=1)).squeeze(1)


class LocusNetModel(Model):
    name = "locus_net"
    _index: WindowIndex | None = None  # rebuilt from the Context when loaded

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        torch.manual_seed(ctx.seed)
        self.activity = self._activity(x, ctx)
        self.windows = self._window_index(ctx).matrix(x)
        self.y = y.copy()
        self.groups = np.array(
            ctx.groups if len(ctx.groups) == len(y) else [str(i) for i in range(len(y))],
            dtype=object,
        )
        self.gene_mean, self.gene_sd = y.mean(axis=0), np.maximum(y.std(axis=0), 0.1)
        # Input scales from the training samples: the windows' spread, the genes' statistics.
        self.scale = np.array(
            [
                max(float(self.windows.data.std()) if self.windows.nnz else 1.0, 1e-3),
                float(self.gene_mean.mean()),
                max(float(self.gene_mean.std()), 1e-3),
                float(self.gene_sd.mean()),
                max(float(self.gene_sd.std()), 1e-3),
            ]
        )
        train_idx, val_idx = _validation_split(len(y), ctx)
        self.net = _Net(self._window_index(ctx).width)
        if not len(val_idx):
            # Too few samples to hold any out: nothing could show that a correction helps,
            # and on the 3-4 samples of the progenitor cohort's folds one trained anyway
            # scored -0.34. The mixture alone (the correction's zero start) is kept.
            log.info("locus_net: %d training samples, too few to validate on; the mixture alone",
                     len(y))  # fmt: skip
            return
        epochs = ctx.epochs.get(self.name, EPOCHS)
        blocks = _gene_blocks(len(self.gene_mean))
        training = self._mixtures(train_idx)
        validate = None
        if len(val_idx):
            held_out = self._mixtures(train_idx, val_idx)

            def validate() -> float:
                return _mean_loss(self.net, (self._batch(g, *held_out) for g in blocks))

        def batches(generator):  # one block of genes × samples, made dense only now
            for i in torch.randperm(len(blocks), generator=generator).tolist():
                yield self._batch(blocks[i], *training)

        def loss_of(net, batch, device):
            w, s, target = (t.to(device) for t in batch)
            return _loss(net(w, s), target)

        key = _checkpoint_key(self.name, (tuple(x.shape), y.shape[1]), ctx, epochs)
        start = copy.deepcopy(self.net.state_dict())  # the mixture alone (correction zero)
        before = validate() if validate is not None else float("inf")
        train(self.name, self.net, batches, loss_of, epochs, ctx, key, validate=validate,
              patience=PATIENCE)  # fmt: skip
        if ctx.validation and min(ctx.validation) >= before:
            self.net.load_state_dict(start)  # no epoch beat the mixture on held-out samples

    def _mixtures(self, parts: np.ndarray, targets: np.ndarray | None = None) -> tuple:
        """The samples `targets` (or `parts` themselves, each without its own group), their
        mixtures of `parts` and how well those fit, and which of `parts` each target's pool
        leaves out: what _batch needs."""
        gram = self.activity[parts] @ self.activity[parts].T
        grouping = None
        if targets is None:
            excluded = _own_groups(self.groups[parts])
            targets, grouping = parts, _grouping(self.groups[parts])
            mix = np.zeros((len(parts), len(parts)))
            for i in range(len(parts)):  # a held-out sample's group is never in its pool
                others = np.flatnonzero(~excluded[i])
                mix[i, others] = _mixture(gram[np.ix_(others, others)], gram[others, i])
        else:
            cross = self.activity[parts] @ self.activity[targets].T
            mix = np.stack([_mixture(gram, cross[:, j]) for j in range(len(targets))])
        quality = _fit_quality(self.activity[targets], mix @ self.activity[parts])
        return parts, targets, mix, quality, grouping

    def _batch(self, genes, parts, targets, mix, quality, grouping) -> tuple:
        """(windows, scalars, standardised residual) of genes × the samples `targets`."""
        pool = _block(self.windows, genes, len(self.y), parts)
        own = pool if targets is parts else _block(self.windows, genes, len(self.y), targets)
        w, s, mixed = self._inputs(own, pool, mix, quality, genes, self.y[parts], grouping)
        target = (self.y[targets][:, genes] - mixed) / self.gene_sd[genes]
        return w, s, torch.from_numpy(np.ascontiguousarray(target.T, dtype=np.float32))

    def _inputs(self, own, pool, mix, quality, genes, pool_y, grouping=None):
        """Network inputs for genes × samples, and the mixture's prediction (samples × genes)."""
        mixed_windows = np.matmul(mix[None], pool)  # genes × targets × width
        diff = own - mixed_windows
        standard = _standardised(own, pool, grouping)
        mixed = mix @ pool_y[:, genes]
        sd, mean = self.gene_sd[genes], self.gene_mean[genes]
        spread, m_mean, m_sd, s_mean, s_sd = self.scale
        scalars = np.stack(
            [
                np.broadcast_to(quality[None, :], diff.shape[:2]),
                np.abs(diff).mean(axis=2) / spread,
                ((mixed - mean) / sd).T,
                np.broadcast_to(((mean - m_mean) / m_sd)[:, None], diff.shape[:2]),
                np.broadcast_to(((sd - s_mean) / s_sd)[:, None], diff.shape[:2]),
            ],
            axis=2,
        )
        windows = np.stack([own / spread, diff / spread, standard], axis=2)
        windows = windows.reshape(-1, CHANNELS, own.shape[2]).astype(np.float32)
        return (
            torch.from_numpy(windows),
            torch.from_numpy(scalars.reshape(-1, SCALARS).astype(np.float32)),
            mixed,
        )

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        activity = self._activity(x, ctx)
        windows = self._window_index(ctx).matrix(x)
        everyone = np.arange(len(self.y))
        gram = self.activity @ self.activity.T
        mix = np.stack([_mixture(gram, self.activity @ a) for a in activity])
        quality = _fit_quality(activity, mix @ self.activity)
        out = np.empty((x.shape[0], len(self.gene_mean)))
        self.net.eval()
        device = next(self.net.parameters()).device
        for genes in _gene_blocks(len(self.gene_mean)):
            own = _block(windows, genes, x.shape[0], np.arange(x.shape[0]))
            pool = _block(self.windows, genes, len(self.y), everyone)
            w, s, mixed = self._inputs(own, pool, mix, quality, genes, self.y)
            with torch.no_grad():
                step = self.net(w.to(device), s.to(device)).float().cpu().numpy()
            correction = step.reshape(len(genes), x.shape[0]).T * self.gene_sd[genes]
            out[:, genes] = mixed + correction
        return out

    def _activity(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        weights = ctx.summary(
            "gene_activity_weights", lambda: gene_activity_weights(ctx.genes, ctx.bins)
        )
        return gene_activity(x, weights)

    def _window_index(self, ctx: Context) -> WindowIndex:
        if self._index is None:
            self._index = ctx.summary(
                f"window_index:{ctx.window}", lambda: WindowIndex(ctx.genes, ctx.bins, ctx.window)
            )
        return self._index

    def state(self):
        arrays = {
            "activity": self.activity,
            "windows": self.windows,
            "y": self.y,
            "gene_mean": self.gene_mean,
            "gene_sd": self.gene_sd,
            "scale": self.scale,
        }
        for key, tensor in self.net.state_dict().items():
            arrays[f"net.{key}"] = tensor.detach().cpu().numpy()
        return arrays, {"width": self.net.width}

    def load_state(self, arrays: dict, settings: dict) -> None:
        for key in ("activity", "windows", "y", "gene_mean", "gene_sd", "scale"):
            setattr(self, key, arrays[key])
        self.net = _Net(int(settings["width"]))
        weights = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        self.net.load_state_dict(weights)


def _gene_blocks(n_genes: int) -> list[np.ndarray]:
    return [
        np.arange(i, min(n_genes, i + GENES_PER_BATCH)) for i in range(0, n_genes, GENES_PER_BATCH)
    ]


def _block(windows: sp.csr_matrix, genes: np.ndarray, n_samples: int, samples: np.ndarray):
    """genes × samples × width dense block of the sparse windows (rows gene·n + sample)."""
    rows = (genes[:, None] * n_samples + samples[None, :]).ravel()
    dense = windows[rows].toarray().astype(np.float64)
    return dense.reshape(len(genes), len(samples), -1)


def _own_groups(groups: np.ndarray) -> np.ndarray:
    """samples × samples: which samples each one's pool leaves out, its own group (only itself
    when its group is every sample): a held-out sample's group is never among the training
    samples, so a training sample must not learn from a pool that holds its own group."""
    excluded = groups[:, None] == groups[None, :]
    everyone = excluded.all(axis=1)
    excluded[everyone] = np.eye(len(groups), dtype=bool)[everyone]
    return excluded


def _grouping(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What _own_groups says, in the form that costs samples × groups rather than samples²:
    a groups × samples indicator, and each sample's group row (-1: only itself left out)."""
    names, index = np.unique(groups, return_inverse=True)
    onehot = (index[None, :] == np.arange(len(names))[:, None]).astype(np.float64)
    return onehot, np.where(len(names) > 1, index, -1)


def _standardised(own: np.ndarray, pool: np.ndarray, grouping: tuple | None) -> np.ndarray:
    """Each sample's window as z-scores of the pool's at every position (genes × samples ×
    width): how unusual this locus is in this sample, on a scale shared by all genes. A
    training sample's pool leaves out its own group (`grouping`, of _grouping), as a new
    sample's holds none of its group."""
    total, squares = pool.sum(axis=1, keepdims=True), (pool**2).sum(axis=1, keepdims=True)
    n = np.full((1, own.shape[1], 1), float(pool.shape[1]))
    if grouping is not None:
        onehot, index = grouping
        by_group = index >= 0
        row = np.clip(index, 0, None)
        sums, sq = np.matmul(onehot[None], pool), np.matmul(onehot[None], pool**2)
        keep = by_group[None, :, None]
        total = total - np.where(keep, sums[:, row], own)
        squares = squares - np.where(keep, sq[:, row], own**2)
        n = n - np.where(by_group, onehot.sum(axis=1)[row], 1.0)[None, :, None]
    n = np.maximum(n, 1.0)
    mean = total / n
    var = np.maximum(squares / n - mean**2, 0.0)
    return np.clip((own - mean) / np.sqrt(var + 0.01), -5.0, 5.0)


def _fit_quality(activity: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    """Per sample: how much of its activity profile the mixture leaves unexplained."""
    residual = np.linalg.norm(activity - mixed, axis=1)
    return residual / np.maximum(np.linalg.norm(activity, axis=1), 1e-9)


def _validation_split(n: int, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Training and early-stopping samples: 20 % of whole groups (or samples), chosen by the
    seed; none when too few samples to spare (fewer than 5)."""
    everyone = np.arange(n)
    if n < 5:
        return everyone, everyone[:0]
    groups = np.array(ctx.groups if len(ctx.groups) == n else [str(i) for i in range(n)])
    names = np.random.default_rng(ctx.seed).permutation(np.unique(groups))
    held, count = [], 0
    for name in names:
        if count >= max(1, n // 5):
            break
        if count + (groups == name).sum() <= n - 3:  # keep 3 samples to train on
            held.append(name)
            count += (groups == name).sum()
    val = np.isin(groups, held)
    return everyone[~val], everyone[val]


def _loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of genes × samples, mostly on each gene's differences between samples
    (what per-gene r across samples scores), a little on its level (OFFSET_WEIGHT)."""
    err = pred.float().reshape(target.shape) - target
    across = err - err.mean(dim=1, keepdim=True)
    return (across**2).mean() + OFFSET_WEIGHT * (err**2).mean()


def _mean_loss(net: _Net, examples: list[tuple]) -> float:
    net.eval()
    device = next(net.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for w, s, target in examples:
            pred = net(w.to(device), s.to(device)).float().cpu()
            total += float(_loss(pred, target)) * len(target)
            count += len(target)
    net.train()
    return total / max(count, 1)
