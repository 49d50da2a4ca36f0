"""Population training: many metaprograms of one model family trained as one batched job.

:func:`train_population` trains K metaprograms on one task at once. Members whose
models share a structure (an MLP's depth and activation, or the linear family, with
the same batch size and feature scaling, see :func:`population_key`) are stacked:
the parameters of every layer live in one ``(K, in, out)`` tensor, each forward and
backward pass is a few batched matrix products (``torch.baddbmm``: on this project's
2-core CPU, one thread, a step of 16 digits MLPs took 0.9 ms against 1.2 ms for
``torch.func.vmap`` over ``functional_call``), and torch's fused Adam, AdamW and SGD
kernels update each member's slice of the stack. Each member keeps its own learning
rate, weight decay, momentum, optimizer, schedule, gradient clipping, dropout, label
smoothing, augmentation, epochs and early stopping. Hidden widths are padded to the widest member and masked, so
padded units are zero and neither reach the outputs nor get gradients.

Each member is the run :func:`~researchgym.engine.train` makes of it alone with the
same seed: the same initial weights (its model is built as ``train`` builds it),
the same batch order, dropout masks and augmentation (its own generators, seeded
as ``train`` seeds them; on a GPU members with dropout train alone, see
:func:`population_key`). Only floating-point rounding differs (batched products
and fused optimizer arithmetic sum in other orders), so metrics agree to a few
units in the last float32 digits per step, growing slowly over training.

A member whose loss or metrics become non-finite gets status ``"diverged"`` alone:
the members' slices never mix. Finished members leave the stack, so the
rest run on without them. Members that cannot be stacked (other families,
normalization layers, sequence tasks, a group of one) run as ordinary ``train``
jobs.

As in ``train``, nothing inside an epoch waits for the device: metrics are read
once per epoch, for every member at once, after the epoch's last step.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from researchgym.engine.data import TaskData, augment_images, load_task_data
from researchgym.engine.hooks import EarlyStopping, Hook, TrainingState
from researchgym.engine.jobs import Result
from researchgym.engine.models import ACTIVATIONS, build_model, count_parameters
from researchgym.engine.runtime import Runtime
from researchgym.engine.settings import is_unit_tree
from researchgym.engine.tasks import TaskRef
from researchgym.engine.training import EVAL_CHUNK, _lr_factor, resolve_device, train
from researchgym.errors import ConfigError, shorten

__all__ = ["population_groups", "population_key", "train_population"]

_ADAM_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as train uses them
_CLIP_EPS = 1e-6  # as torch.nn.utils.clip_grad_norm_


def population_key(
    metaprogram: Mapping[str, Any], device: str | torch.device = "cpu"
) -> Hashable | None:
    """What members must share to train in one stack, or ``None`` when one cannot be stacked.

    Stackable: the ``"linear"`` family and MLPs without normalization layers, on a
    device other than the CPU only without dropout (there ``nn.Dropout`` draws its masks
    with a fused kernel, which the stack does not reproduce). Members with equal keys
    share depth, activation, batch size and feature scaling; widths, optimizers and
    every other setting may differ.
    """
    if is_unit_tree(metaprogram):
        return None
    family = metaprogram.get("model.family", "mlp")
    if family == "linear":
        depth, activation = 0, None
    elif family == "mlp" and metaprogram["model.norm"] == "none":
        if metaprogram["model.dropout"] > 0 and resolve_device(device).type != "cpu":
            return None
        depth, activation = metaprogram["model.depth"], metaprogram["model.activation"]
    else:
        return None
    return (
        depth,
        activation,
        metaprogram["train.batch_size"],
        metaprogram.get("data.scaling", "standard"),
    )


def population_groups(
    metaprograms: Sequence[Mapping[str, Any]], device: str | torch.device = "cpu"
) -> list[list[int]]:
    """Indices of the metaprograms grouped into jobs on ``device``: each group trains as
    one stack, and a metaprogram that shares its key with no other (or has none) is a
    group of one, trained by ``train``. Groups come in order of their first member."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, m in enumerate(metaprograms):
        key = population_key(m, device)
        groups[("alone", i) if key is None else key].append(i)
    return list(groups.values())


def train_population(
    metaprograms: Sequence[Mapping[str, Any]],
    *,
    task: TaskRef | str,
    seeds: Sequence[int],
    device: str | torch.device = "auto",
    hooks: Sequence[Hook] = (),
    runtime: Runtime | Mapping[str, Any] | None = None,
) -> list[Result]:
    """Train every metaprogram on one task, stacking those that can share a batched job.

    Args:
        metaprograms: validated settings with defaults filled, as ``train`` takes them.
        task: the task all members train on (see ``train``).
        seeds: one seed per metaprogram, as ``train``'s ``seed``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        hooks: hooks called for every member with that member's training state.
        runtime: precision and determinism, as ``train`` takes them. With ``compile``,
            nothing is stacked: every member trains alone, compiled.

    Returns:
        One :class:`Result` per metaprogram, in order, as ``train`` returns it. A stacked
        member's ``seconds`` is its share of its stack's wall-clock time (the stack's
        time over its members), so the seconds of all members add up to the time taken.

    Raises:
        ConfigError: ``seeds`` does not give one seed per metaprogram, or ``runtime`` is
            not valid or cannot train on ``device``.
        Exception: what ``train`` raises; a failure inside a stack fails the call.
    """
    if len(seeds) != len(metaprograms):
        raise ConfigError(
            f"seeds={shorten(list(seeds))} must give one seed per metaprogram "
            f"({len(metaprograms)} metaprograms)"
        )
    run = Runtime.of(runtime)
    dev = resolve_device(device)
    run.check(dev)
    task = TaskRef.of(task)
    results: list[Result | None] = [None] * len(metaprograms)
    for group in population_groups(metaprograms, dev):
        members = [dict(metaprograms[i]) for i in group]
        data = None
        if len(group) > 1 and population_key(members[0], dev) is not None and not run.compile:
            data = load_task_data(task, members[0].get("data.scaling", "standard"), str(dev))
        if data is None or data.kind not in ("classification", "regression"):
            for i, m in zip(group, members, strict=True):
                results[i] = train(
                    m, task=task, seed=seeds[i], device=dev, hooks=hooks, runtime=run
                )
            continue
        with run.applied(dev):
            stacked = _Stack(members, [seeds[i] for i in group], data, dev, hooks, run).train()
        for i, result in zip(group, stacked, strict=True):
            results[i] = result
    return [r for r in results if r is not None]


@dataclass
class _Member:
    """One member's own state: what ``train`` would keep in its locals."""

    metaprogram: dict[str, Any]
    state: TrainingState
    hooks: list[Hook]
    order: torch.Generator  # batch order and augmentation, as train's generator
    dropout: torch.Generator  # the global generator train's dropout draws from
    n_params: int
    width: int  # hidden units (0 for the linear family)
    result: Result | None = None
    val: dict[str, float] = field(default_factory=dict)


class _Stack:
    """Members of one :func:`population_key` trained together.

    Every tensor of per-member values has the members still training along its first
    dimension. Parameters, gradients and optimizer states live in flat buffers, one
    contiguous ``(K, in, out)`` weight and ``(K, 1, out)`` bias block per layer, so each
    member's slices are contiguous tensors that the fused optimizer kernels update.
    """

    def __init__(
        self,
        metaprograms: list[dict[str, Any]],
        seeds: list[int],
        data: TaskData,
        dev: torch.device,
        hooks: Sequence[Hook],
        runtime: Runtime,
    ):
        self.data, self.dev, self.runtime = data, dev, runtime
        self.classification = data.kind == "classification"
        first = metaprograms[0]
        self.depth = first["model.depth"] if first.get("model.family", "mlp") == "mlp" else 0
        self.activation = ACTIVATIONS[first["model.activation"]]() if self.depth else None
        self.batch_size = first["train.batch_size"]
        n_in = int(torch.Size(data.input_shape).numel())
        models, self.members = [], []
        for m, seed in zip(metaprograms, seeds, strict=True):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # as train: the model's initialization, then dropout
                model = build_model(m, data.input_shape, data.n_outputs)
                dropout = torch.Generator(device=dev)
                if dev.type == "cpu":
                    dropout.set_state(torch.get_rng_state())
                else:
                    dropout.manual_seed(seed)
            member_hooks = list(hooks)
            if m["train.early_stopping"] > 0:
                member_hooks.append(EarlyStopping(m["train.early_stopping"]))
            self.members.append(
                _Member(
                    metaprogram=m,
                    state=TrainingState(metaprogram=m, epochs=m["train.epochs"]),
                    hooks=member_hooks,
                    order=torch.Generator(device=dev).manual_seed(seed),
                    dropout=dropout,
                    n_params=count_parameters(model),
                    width=m["model.width"] if self.depth else 0,
                )
            )
            models.append(model)
        width = max(member.width for member in self.members)
        sizes = [n_in, *[width] * self.depth, data.n_outputs]
        self.shapes = [(sizes[i], sizes[i + 1]) for i in range(self.depth + 1)]
        self._init_parameters(models)
        self._init_hyperparameters()

    # --- parameters and optimizer state ------------------------------------------------------
    def _block_sizes(self) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = []
        for n_in, n_out in self.shapes:
            shapes += [(n_in, n_out), (1, n_out)]
        return shapes

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """The per-layer ``(K, ...)`` weight and bias blocks of a flat buffer."""
        k, views, offset = len(self.members), [], 0
        for shape in self._block_sizes():
            size = k * math.prod(shape)
            views.append(flat[offset : offset + size].view(k, *shape))
            offset += size
        return views

    def _init_parameters(self, models: list[nn.Module]) -> None:
        k = len(models)
        total = k * sum(math.prod(s) for s in self._block_sizes())
        self.flat = torch.zeros(total, device=self.dev)
        views = self._views(self.flat)
        for i, model in enumerate(models):
            linears = [mod for mod in model.modules() if isinstance(mod, nn.Linear)]
            for layer, linear in enumerate(linears):
                weight, bias = views[2 * layer], views[2 * layer + 1]
                n_out, n_in = linear.weight.shape
                weight[i, :n_in, :n_out] = linear.weight.detach().T
                bias[i, 0, :n_out] = linear.bias.detach()
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.momentum_buffer = torch.zeros_like(self.flat)
        self._bind()

    def _bind(self) -> None:
        """Leaf views of the parameters whose gradients accumulate into one flat buffer, and
        each member's slices of the parameters, gradients and optimizer states."""
        self.grad = torch.zeros_like(self.flat)
        self.params = self._views(self.flat)
        for p, g in zip(self.params, self._views(self.grad), strict=True):
            p.requires_grad_()
            p.grad = g
        buffers = (self.flat, self.grad, self.exp_avg, self.exp_avg_sq, self.momentum_buffer)
        views = [self._views(b) for b in buffers]
        self.slices = [
            [[v[i] for v in blocks] for blocks in views] for i in range(len(self.members))
        ]

    def _init_hyperparameters(self) -> None:
        ms = [member.metaprogram for member in self.members]
        self.clip = torch.tensor([m["train.grad_clip"] for m in ms], device=self.dev)
        self.dropout_p = [m["model.dropout"] if self.depth else 0.0 for m in ms]
        self.smoothing = torch.tensor(
            [m.get("train.label_smoothing", 0.0) if self.classification else 0.0 for m in ms],
            device=self.dev,
        )
        self.width_mask = torch.zeros(len(ms), 1, self.shapes[0][1], device=self.dev)
        for i, member in enumerate(self.members):
            self.width_mask[i, :, : member.width] = 1.0
        # the learning rate of every member at every step, as train sets it
        n = len(self.data.x_train)
        per_epoch = max(1, n // self.batch_size + (n % self.batch_size > 1))
        self.lr = []
        for m in ms:
            total = m["train.epochs"] * per_epoch
            if m["optim.schedule"] == "constant":
                self.lr.append([m["optim.lr"]] * total)
            else:
                self.lr.append([m["optim.lr"] * _lr_factor(m, s, total) for s in range(total)])
        self._kinds()

    def _kinds(self) -> None:
        """Which parts of the step and the loss some member needs."""
        self.clipping = bool(self.clip.any())
        self.smoothed = bool(self.smoothing.any())
        self.padded = len({member.width for member in self.members}) > 1
        self.dropout_scale = [1 / (1 - p) for p in self.dropout_p]
        # one buffer of multipliers per hidden layer; members without dropout keep their mask
        self.dropout_buffers = [
            self.width_mask.expand(-1, self.batch_size, -1).clone()
            for _ in range(self.depth if any(self.dropout_p) else 0)
        ]

    def _keep(self, keep: list[int]) -> None:
        """Drop the members not in ``keep`` (positions in the stack) from every tensor."""
        index = torch.tensor(keep, dtype=torch.long, device=self.dev)

        def compact(flat: torch.Tensor) -> torch.Tensor:
            return torch.cat([v.detach()[index].reshape(-1) for v in self._views(flat)])

        self.flat, self.exp_avg, self.exp_avg_sq, self.momentum_buffer = (
            compact(t) for t in (self.flat, self.exp_avg, self.exp_avg_sq, self.momentum_buffer)
        )
        self.clip, self.smoothing = self.clip[index], self.smoothing[index]
        self.width_mask = self.width_mask[index]
        self.lr = [self.lr[i] for i in keep]
        self.dropout_p = [self.dropout_p[i] for i in keep]
        self.members = [self.members[i] for i in keep]
        self._bind()
        self._kinds()

    # --- the model -------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """Outputs ``(K, batch, n_outputs)`` of inputs ``(K or 1, batch, features)``."""
        h = x
        for layer in range(self.depth + 1):
            weight, bias = self.params[2 * layer], self.params[2 * layer + 1]
            h = torch.baddbmm(bias, h, weight) if h.shape[0] > 1 else bias + h @ weight
            if layer < self.depth:
                assert self.activation is not None
                h = self.activation(h)
                keep = self._dropout(layer, h.shape[1]) if training else None
                if keep is not None:
                    h = h * keep
                elif self.padded:
                    h = h * self.width_mask
        return h

    def _dropout(self, layer: int, batch: int) -> torch.Tensor | None:
        """Each member's dropout multiplier (padding masked), drawn as ``nn.Dropout`` draws it.

        Drawn in place into the layer's buffer: the previous step's backward, the only
        reader of its last draw, has run by then.
        """
        if not self.dropout_buffers:
            return None
        keep = self.dropout_buffers[layer][:, :batch]
        for i, (member, p) in enumerate(zip(self.members, self.dropout_p, strict=True)):
            if p > 0:
                mask = keep[i, :, : member.width]
                mask.bernoulli_(1 - p, generator=member.dropout).mul_(self.dropout_scale[i])
        return keep

    def _losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Every member's training loss ``(K,)``, as train's loss."""
        if not self.classification:
            return (out.squeeze(-1) - y).pow(2).mean(dim=1)
        logp = out.log_softmax(dim=-1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        if not self.smoothed:
            return nll.mean(dim=1)
        s = self.smoothing[:, None]
        return ((1 - s) * nll - s * logp.mean(dim=-1)).mean(dim=1)

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, float]]:
        """Every member's metrics on a split, as train's evaluation."""
        out = torch.cat(
            [
                self._forward(x[None, i : i + EVAL_CHUNK].flatten(2), False)
                for i in range(0, len(x), EVAL_CHUNK)
            ],
            dim=1,
        )
        if self.classification:
            loss = nn.functional.cross_entropy(
                out.transpose(1, 2), y.expand(len(out), -1), reduction="none"
            ).mean(1)
            accuracy = (out.argmax(dim=-1) == y).float().mean(dim=1)
            metrics = {"loss": loss, "accuracy": accuracy, "score": accuracy}
        else:
            mse = (out.squeeze(-1) - y).pow(2).mean(dim=1)
            r2 = 1.0 - mse / y.var(unbiased=False).clamp_min(1e-12)
            metrics = {"loss": mse, "mse": mse, "r2": r2, "score": r2.clamp_min(-1.0)}
        rows = torch.stack(list(metrics.values()), dim=1).tolist()
        return [dict(zip(metrics, row, strict=True)) for row in rows]

    # --- training ----------------------------------------------------------------------------
    @torch.no_grad()
    def _step(self, step: int) -> None:
        """One optimizer step of every member, by torch's fused Adam, AdamW and SGD kernels."""
        if self.clipping:
            views = self._views(self.grad)
            norms = torch.stack([v.reshape(len(v), -1).pow(2).sum(1) for v in views]).sum(0).sqrt()
            coef = (self.clip / (norms + _CLIP_EPS)).clamp(max=1.0)
            coef = torch.where(self.clip > 0, coef, 1.0).view(-1, 1, 1)
            for view in views:
                view.mul_(coef)
        count = [torch.full((), float(step + 1), device=self.dev)] * len(self.params)
        for member, lr, (params, grads, exp_avgs, exp_avg_sqs, buffers) in zip(
            self.members, self.lr, self.slices, strict=True
        ):
            m = member.metaprogram
            name, wd = m["optim.name"], m["optim.weight_decay"]
            if name == "sgd":
                momentum = m["optim.momentum"]
                torch._fused_sgd_(
                    params,
                    grads,
                    buffers if momentum > 0 else [],
                    weight_decay=wd,
                    momentum=momentum,
                    lr=lr[step],
                    dampening=0.0,
                    nesterov=False,
                    maximize=False,
                    is_first_step=step == 0,
                )
            else:
                fused = torch._fused_adamw_ if name == "adamw" else torch._fused_adam_
                fused(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    [],
                    count,
                    lr=lr[step],
                    beta1=_ADAM_BETAS[0],
                    beta2=_ADAM_BETAS[1],
                    weight_decay=wd,
                    eps=_ADAM_EPS,
                    amsgrad=False,
                    maximize=False,
                )

    def train(self) -> list[Result]:
        started = time.perf_counter()
        results = list(self.members)
        data, n, batch_size = self.data, len(self.data.x_train), self.batch_size
        for member in self.members:
            for hook in member.hooks:
                hook.on_train_start(member.state)
        step = samples = epoch = 0
        while self.members:
            k = len(self.members)
            for member in self.members:
                member.state.epoch = epoch
            orders = torch.stack(
                [torch.randperm(n, generator=m.order, device=self.dev) for m in self.members]
            )
            epoch_loss = torch.zeros(k, device=self.dev)
            for first in range(0, n, batch_size):
                size = min(batch_size, n - first)
                if size < 2:  # as train: batch norm cannot train on a single example
                    continue
                idx = orders[:, first : first + size]
                xb, yb = data.x_train[idx], data.y_train[idx]
                for i, member in enumerate(self.members):
                    if member.metaprogram.get("data.augment", False):
                        xb[i] = augment_images(xb[i], member.order)
                with self.runtime.autocast(self.dev):
                    outputs = self._forward(xb.reshape(k, size, -1), True)
                losses = self._losses(outputs.float(), yb)
                self.grad.zero_()
                losses.sum().backward()
                self._step(step)
                epoch_loss += losses.detach() * size
                step += 1
                samples += size
            epoch += 1
            self._end_epoch(epoch, (epoch_loss / n).tolist(), samples)
        seconds = (time.perf_counter() - started) / len(results)
        out = []
        for member in results:
            assert member.result is not None
            member.result.seconds = seconds
            out.append(member.result)
        return out

    def _end_epoch(self, epoch: int, train_losses: list[float], samples: int) -> None:
        """Record every member's epoch, as train does; finished members leave the stack."""
        vals = self._evaluate(self.data.x_val, self.data.y_val)
        finished: dict[int, str] = {}
        for i, (member, train_loss, val) in enumerate(
            zip(self.members, train_losses, vals, strict=True)
        ):
            state = member.state
            if not math.isfinite(train_loss) or not all(math.isfinite(v) for v in val.values()):
                state.curve.append({"epoch": epoch, "train_loss": train_loss})
                finished[i] = "diverged"
                continue
            member.val = val
            state.curve.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val["loss"],
                    "val_score": val["score"],
                }
            )
            for hook in member.hooks:
                hook.on_epoch_end(state)
            if state.stop or epoch >= state.epochs:
                finished[i] = "ok"
        if not finished:
            return
        tests = (
            self._evaluate(self.data.x_test, self.data.y_test)
            if "ok" in finished.values()
            else None
        )
        for i, status in finished.items():
            member = self.members[i]
            for hook in member.hooks:
                hook.on_train_end(member.state)
            member.result = Result(
                status=status,
                curve=member.state.curve,
                samples=samples,
                n_params=member.n_params,
                device=str(self.dev),
                epochs=epoch,
                error="the training loss or validation metrics became non-finite"
                if status == "diverged"
                else None,
            )
            if status == "ok":
                assert tests is not None
                member.result.val_metrics, member.result.test_metrics = member.val, tests[i]
        self._keep([i for i in range(len(self.members)) if i not in finished])
