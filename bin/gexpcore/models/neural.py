"""The neural model: the proof of concept's network, kept for comparison.

It trains with one loop (`train`): Adam on mean squared error of log1p TPM,
deterministic on the CPU for a seed (each epoch's shuffle is seeded by the epoch,
so a resumed run repeats an uninterrupted one), mixed precision on CUDA, a
progress bar with the loss per epoch on a terminal, and a checkpoint every few
epochs from which an interrupted training resumes.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .base import Context, Model, refuse_dense

log = logging.getLogger("gexp")

Batches = Callable[[torch.Generator], Iterator[tuple]]


def _checkpoint_key(name: str, shapes: tuple, ctx: Context, epochs: int) -> str:
    return f"{name}:{shapes}:{ctx.seed}:{epochs}:{ctx.window}:{ctx.early_stopping}"


def train(
    name: str,
    net: nn.Module,
    batches: Batches,
    loss_of: Callable,
    epochs: int,
    ctx: Context,
    key: str,
    lr: float = 1e-3,
    validate: Callable[[], float] | None = None,
    patience: int = 50,
) -> nn.Module:
    """Fit `net` in place; returns the net (the best on validation when `validate` is given)."""
    device = torch.device(ctx.device)
    net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    start, history, validation, best, best_state, waited = 0, [], [], float("inf"), None, 0
    if ctx.checkpoint is not None and ctx.checkpoint.is_file():
        saved = torch.load(ctx.checkpoint, map_location=device, weights_only=False)
        if saved.get("key") == key:
            net.load_state_dict(saved["net"])
            optimiser.load_state_dict(saved["optimiser"])
            start, history = saved["epoch"], saved["history"]
            validation = saved.get("validation", [])
            best, best_state, waited = saved["best"], saved["best_state"], saved["waited"]
            log.info("%s: resuming from the checkpoint at epoch %d", name, start)
    bar = _bar(ctx.progress, epochs, start, name)
    last_save = time.monotonic()
    for epoch in range(start, epochs):
        net.train()
        generator = torch.Generator().manual_seed(ctx.seed * 100_003 + epoch)
        total, count = 0.0, 0
        for batch in batches(generator):
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=cuda):
                loss = loss_of(net, batch, device)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += float(loss.detach()) * len(batch[-1])
            count += len(batch[-1])
        history.append(total / max(count, 1))
        stop = False
        if validate is not None:
            score = validate()
            validation.append(score)
            if score < best - 1e-6:
                best, best_state, waited = score, copy.deepcopy(net.state_dict()), 0
            else:
                waited += 1
                stop = waited >= patience
        bar.update(1)
        bar.set_postfix(loss=f"{history[-1]:.4g}")
        if not ctx.progress and (epoch + 1) % max(1, epochs // 5) == 0:
            label = _fit_label(ctx)
            log.info("%s %s: epoch %d/%d loss %.4g", name, label, epoch + 1, epochs, history[-1])
        due = time.monotonic() - last_save >= ctx.checkpoint_every or epoch + 1 == epochs
        if ctx.checkpoint is not None and due:
            progress = {"epoch": epoch + 1, "history": history, "validation": validation}
            _save(ctx.checkpoint, key, net, optimiser, progress, best, best_state, waited)
            last_save = time.monotonic()
        if stop:
            log.info(
                "%s %s: early stop at epoch %d (best validation loss %.4g)",
                name,
                _fit_label(ctx),
                epoch + 1,
                best,
            )
            break
    bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    ctx.history[:] = history
    ctx.validation[:] = validation
    return net


def _fit_label(ctx: Context) -> str:
    """Which fit this is, for the log: fold0, fold1, …, or final (from its checkpoint name)."""
    return ctx.checkpoint.stem if ctx.checkpoint is not None else "fit"


def _save(path, key, net, optimiser, progress: dict, best, best_state, waited) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {
        "key": key,
        "net": net.state_dict(),
        "optimiser": optimiser.state_dict(),
        **progress,  # epoch, history, validation
        "best": best,
        "best_state": best_state,
        "waited": waited,
    }
    try:
        torch.save(state, tmp)
    except RuntimeError as exc:  # torch's zip writer reports a failed write (a full disk) so
        tmp.unlink(missing_ok=True)
        stat = os.statvfs(path.parent)
        if stat.f_bavail * stat.f_frsize < 16 * 2**20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from None
        raise OSError(
            errno.EIO, f"torch could not write the checkpoint ({exc})", str(tmp)
        ) from None
    os.replace(tmp, path)


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(enabled: bool, total: int, initial: int, name: str):
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="epoch", leave=False)


def _predict_in_batches(fn: Callable[[slice], torch.Tensor], n: int, size: int) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [fn(slice(i, min(n, i + size))).float().cpu().numpy() for i in range(0, n, size)]
        )


class SeedMLP(Model):
    """The proof of concept's network: all bins → 500 ReLU units → all genes, MSE.

    Trained full-batch on log1p TPM centred on the training samples' gene means, for
    1000 epochs, or with early stopping on 20 % of the training samples held out.
    """

    name = "seed_mlp"
    hidden = 500

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        refuse_dense(self.name, x.shape)
        torch.manual_seed(ctx.seed)
        epochs = ctx.epochs.get(self.name, 1000)
        self.mean = y.mean(axis=0)
        xs = torch.from_numpy(x.toarray().astype(np.float32))
        ys = torch.from_numpy((y - self.mean).astype(np.float32))
        train_idx = np.arange(len(ys))
        validate = None
        if ctx.early_stopping and len(ys) >= 5:
            order = np.random.default_rng(ctx.seed).permutation(len(ys))
            n_val = max(1, len(ys) // 5)
            val_idx, train_idx = order[:n_val], order[n_val:]

            def validate() -> float:
                self.net.eval()
                with torch.no_grad():
                    dev = next(self.net.parameters()).device
                    pred = self.net(xs[val_idx].to(dev)).float().cpu()
                return float(((pred - ys[val_idx]) ** 2).mean())

        self.net = _network(x.shape[1], self.hidden, y.shape[1])
        xt, yt = xs[train_idx], ys[train_idx]

        def batches(_generator):
            yield xt, yt

        def loss_of(net, batch, device):
            xb, yb = batch
            return ((net(xb.to(device)) - yb.to(device)) ** 2).mean()

        key = _checkpoint_key(self.name, tuple(x.shape) + (y.shape[1],), ctx, epochs)
        train(self.name, self.net, batches, loss_of, epochs, ctx, key, validate=validate)

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        refuse_dense(self.name, x.shape)
        self.net.eval()
        device = next(self.net.parameters()).device
        xs = torch.from_numpy(x.toarray().astype(np.float32))
        out = _predict_in_batches(lambda s: self.net(xs[s].to(device)), len(xs), 256)
        return out + self.mean

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """The gene means and the network's weights as arrays (on the CPU), and its shape."""
        arrays = {"mean": self.mean}
        for key, tensor in self.net.state_dict().items():
            arrays[f"net.{key}"] = tensor.detach().cpu().numpy()
        first, last = self.net[0], self.net[2]
        return arrays, {
            "inputs": first.in_features,
            "hidden": first.out_features,
            "outputs": last.out_features,
        }

    def load_state(self, arrays: dict, settings: dict) -> None:
        self.mean = arrays["mean"]
        self.net = _network(settings["inputs"], settings["hidden"], settings["outputs"])
        weights = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        self.net.load_state_dict(weights)


def _network(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))
