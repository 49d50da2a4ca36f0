"""``train``: a metaprogram in, metrics out. The engine's one training loop."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from researchgym.engine.data import (
    IGNORE,
    SEQUENCE_KINDS,
    TaskData,
    augment_images,
    load_task_data,
)
from researchgym.engine.hooks import EarlyStopping, Hook, TrainingState
from researchgym.engine.jobs import Result, Start
from researchgym.engine.models import build_model, count_parameters
from researchgym.engine.runtime import Runtime
from researchgym.engine.snapshot import Snapshot
from researchgym.engine.tasks import TaskRef
from researchgym.errors import ConfigError, shorten

__all__ = [
    "TrainCheck",
    "check_trainable",
    "resolve_device",
    "train",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _optimizer(m: Mapping[str, Any], params) -> torch.optim.Optimizer:
    name, lr, wd = m["optim.name"], m["optim.lr"], m["optim.weight_decay"]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=m["optim.momentum"], weight_decay=wd)


def _lr_factor(m: Mapping[str, Any], step: int, total: int) -> float:
    schedule = m["optim.schedule"]
    if schedule == "constant":
        return 1.0
    warmup = int(m.get("optim.warmup_frac", 0.0) * total) if schedule == "warmup_cosine" else 0
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


EVAL_CHUNK = 2048  # examples per forward pass when evaluating a split


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if len(x) <= EVAL_CHUNK:
        return model(x)
    return torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])


def _token_metrics(out: torch.Tensor, y: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
    """Loss and accuracy over scored positions (targets other than ``IGNORE``)."""
    logits, targets = out.reshape(-1, out.shape[-1]), y.reshape(-1)
    loss = nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE)
    scored = y != IGNORE
    hits = (out.argmax(dim=-1) == y) & scored
    accuracy = hits.sum() / scored.sum().clamp_min(1)
    if kind == "language":
        bpc = loss / math.log(2.0)
        score = (1.0 - bpc / 8.0).clamp(-1.0, 1.0)
        return {"loss": loss, "bpc": bpc, "accuracy": accuracy, "score": score}
    sequences = (hits | ~scored).all(dim=1).float().mean()
    return {"loss": loss, "accuracy": accuracy, "sequence_accuracy": sequences, "score": accuracy}


def _loss(
    out: torch.Tensor, y: torch.Tensor, *, classification: bool, smoothing: float
) -> torch.Tensor:
    """The training loss: cross entropy over the scored targets, or mean squared error."""
    if not classification:
        return nn.functional.mse_loss(out.squeeze(1), y)
    if out.dim() != 2:  # token logits: one row per position
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
    return nn.functional.cross_entropy(out, y, label_smoothing=smoothing, ignore_index=IGNORE)


@torch.no_grad()
def _evaluate(
    model: nn.Module, data: TaskData, x: torch.Tensor, y: torch.Tensor
) -> dict[str, float]:
    model.eval()
    out = _predict(model, x)
    if data.kind == "classification":
        loss = nn.functional.cross_entropy(out, y)
        accuracy = (out.argmax(dim=1) == y).float().mean()
        metrics = {"loss": loss, "accuracy": accuracy, "score": accuracy}
    elif data.kind in SEQUENCE_KINDS:
        metrics = _token_metrics(out, y, data.kind)
    else:
        pred = out.squeeze(1)
        mse = nn.functional.mse_loss(pred, y)
        r2 = 1.0 - mse / y.var(unbiased=False).clamp_min(1e-12)
        metrics = {"loss": mse, "mse": mse, "r2": r2, "score": r2.clamp_min(-1.0)}
    model.train()
    return dict(zip(metrics, torch.stack(list(metrics.values())).tolist(), strict=True))


def train(
    metaprogram: Mapping[str, Any],
    *,
    task: TaskRef | str,
    seed: int = 0,
    device: str | torch.device = "auto",
    hooks: Sequence[Hook] = (),
    start: Start | None = None,
    save_to: str | None = None,
    schedule_epochs: int | None = None,
    runtime: Runtime | Mapping[str, Any] | None = None,
) -> Result:
    """Train the model a metaprogram describes on a task and measure it.

    The result depends only on the arguments: on the CPU the same inputs give
    bitwise the same metrics. A run continued from its checkpoint gives bitwise what
    one uninterrupted run to the same number of epochs gives.

    Classification, token-sequence and language tasks share one loss: cross
    entropy over the scored targets (sequence positions marked ``IGNORE`` do not
    count); regression uses mean squared error.

    Nothing inside an epoch waits for the device: the data lives on it, the batch
    order is drawn there and the epoch's loss summed there. Metrics are read once per
    epoch, after its last step, when the run validates.

    Args:
        metaprogram: validated settings with defaults filled (see ``Schema.validate``);
            ``train.epochs`` counts the epochs of the run ``start`` names too.
        task: a :class:`~researchgym.engine.TaskRef`, or a task name: a dataset name
            with optional parameters, e.g. ``"digits"`` (see ``researchgym.engine.DATASETS``
            and ``researchgym.engine.data.parse_task``).
        seed: seeds initialization, batch order, dropout and augmentation (a continued
            run restores its saved random states instead).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        hooks: extra hooks called during training.
        start: continue or fork a run saved by an earlier job (see
            :class:`~researchgym.engine.Start`). A fork's curve starts with its
            parent's weights evaluated, at the parent's epoch count.
        save_to: write the final state there (atomically) when training finished.
        schedule_epochs: epochs over which the learning-rate schedule runs (default:
            ``train.epochs``; a continued run keeps its saved one). Past them a cosine
            schedule stays at zero.
        runtime: precision, compilation and determinism (a :class:`~researchgym.engine.Runtime`
            or a mapping of its fields; default: float32, eager, torch's defaults).

    Returns:
        A :class:`Result` with status ``"ok"``, ``"diverged"`` when the loss
        became NaN or infinite, or ``"invalid_action"`` when ``start`` may not start
        this metaprogram (saying why). Other failures raise; executors turn them into
        failed results.

    Raises:
        ConfigError: ``schedule_epochs`` or ``runtime`` is not valid, or ``runtime`` cannot
            train on ``device``.
    """
    if schedule_epochs is not None and (
        isinstance(schedule_epochs, bool)
        or not isinstance(schedule_epochs, int)
        or schedule_epochs < 1
    ):
        raise ConfigError(f"schedule_epochs={shorten(schedule_epochs)} must be a positive integer")
    run = Runtime.of(runtime)
    dev = resolve_device(device)
    run.check(dev)
    with run.applied(dev):
        return _train(
            metaprogram,
            task=TaskRef.of(task),
            seed=seed,
            dev=dev,
            hooks=hooks,
            start=start,
            save_to=save_to,
            schedule_epochs=schedule_epochs,
            runtime=run,
        )


def _train(
    metaprogram: Mapping[str, Any],
    *,
    task: TaskRef,
    seed: int,
    dev: torch.device,
    hooks: Sequence[Hook],
    start: Start | None,
    save_to: str | None,
    schedule_epochs: int | None,
    runtime: Runtime,
) -> Result:
    m = dict(metaprogram)
    saved = None
    if start is not None:
        saved = Snapshot.load(start.checkpoint)
        reason = saved.refusal(start.mode, m, task.name, dev)
        if reason is not None:
            return Result(status="invalid_action", error=f"cannot {start.mode} the run: {reason}")
    data = load_task_data(task, m.get("data.scaling", "standard"), str(dev))
    classification = data.kind != "regression"  # one class (or token) per target

    torch.manual_seed(seed)
    generator = torch.Generator(device=dev).manual_seed(seed)
    model = build_model(m, data.input_shape, data.n_outputs).to(dev)
    forward = runtime.compiled(model)
    optimizer = _optimizer(m, model.parameters())
    smoothing = m.get("train.label_smoothing", 0.0) if classification else 0.0
    augment = m.get("data.augment", False)
    clip = m["train.grad_clip"]

    n, batch_size, epochs = len(data.x_train), m["train.batch_size"], m["train.epochs"]
    batches_per_epoch = max(1, n // batch_size + (n % batch_size > 1))
    base_lr, scheduled = m["optim.lr"], m["optim.schedule"] != "constant"

    state = TrainingState(metaprogram=m, epochs=epochs)
    done = step = samples = 0  # epochs the weights have seen, steps taken, examples this job
    val: dict[str, float] | None = None  # the latest validation metrics
    schedule_epochs = schedule_epochs or epochs
    if saved is not None:
        model.load_state_dict(saved.model)
        done = saved.epochs
        if start is not None and start.mode == "continue":
            saved.restore(optimizer, generator, dev)
            step, schedule_epochs = saved.step, saved.schedule_epochs
            state.curve = list(saved.curve)
        else:  # a fork resumes the schedule at its parent's epoch, from its weights' metrics
            step = done * batches_per_epoch
            val = _evaluate(model, data, data.x_val, data.y_val)
            state.curve.append({"epoch": done, "val_loss": val["loss"], "val_score": val["score"]})
    total_steps = schedule_epochs * batches_per_epoch

    all_hooks = list(hooks)
    if m["train.early_stopping"] > 0:
        all_hooks.append(EarlyStopping(m["train.early_stopping"]))
    for hook in all_hooks:
        hook.on_train_start(state)

    status = "ok"
    model.train()
    x_train, y_train = data.x_train, data.y_train
    for epoch in range(done, epochs):
        if state.stop:  # by a hook, or early stopping had already ended the continued run
            break
        state.epoch = epoch
        order = torch.randperm(n, generator=generator, device=dev)
        epoch_loss = torch.zeros((), device=dev)
        for first in range(0, n, batch_size):
            size = min(batch_size, n - first)
            if size < 2:  # batch norm cannot train on a single example
                continue
            idx = order[first : first + size]
            xb, yb = x_train[idx], y_train[idx]
            if augment:
                xb = augment_images(xb, generator)
            with runtime.autocast(dev):
                out = forward(xb)
            loss = _loss(out.float(), yb, classification=classification, smoothing=smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            if scheduled:
                for group in optimizer.param_groups:
                    group["lr"] = base_lr * _lr_factor(m, step, total_steps)
            optimizer.step()
            epoch_loss += loss.detach() * size
            step += 1
            samples += size
        done = epoch + 1
        train_loss = float(epoch_loss) / n
        val = _evaluate(model, data, data.x_val, data.y_val) if math.isfinite(train_loss) else None
        if val is None or not all(math.isfinite(v) for v in val.values()):
            status = "diverged"  # the loss, or the last steps blew the weights up
            state.curve.append({"epoch": done, "train_loss": train_loss})
            break
        state.curve.append(
            {
                "epoch": done,
                "train_loss": train_loss,
                "val_loss": val["loss"],
                "val_score": val["score"],
            }
        )
        for hook in all_hooks:
            hook.on_epoch_end(state)
    for hook in all_hooks:
        hook.on_train_end(state)

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    result = Result(
        status=status,
        curve=state.curve,
        samples=samples,
        n_params=count_parameters(model),
        device=str(dev),
        epochs=done,
        error="the training loss or validation metrics became non-finite"
        if status == "diverged"
        else None,
    )
    if status == "ok":
        if save_to is not None:
            Snapshot.capture(
                model=model,
                optimizer=optimizer,
                generator=generator,
                device=dev,
                metaprogram=m,
                task=task.name,
                epochs=done,
                step=step,
                samples=samples + (saved.samples if saved is not None else 0),
                schedule_epochs=schedule_epochs,
                curve=state.curve,
            ).save(save_to)
        # the last validation is the final model's (a continued run that early stopping
        # had already ended trained no epoch)
        result.val_metrics = val or _evaluate(model, data, data.x_val, data.y_val)
        result.test_metrics = _evaluate(model, data, data.x_test, data.y_test)
    result.seconds = time.perf_counter() - state.started
    return result


@dataclass(frozen=True)
class TrainCheck:
    """What :func:`check_trainable` found.

    Attributes:
        status: ``"ok"``, ``"error"`` (building the model or the pass raised) or
            ``"non_finite"`` (the loss or a gradient).
        error: why the check failed.
        n_params: parameters of the built model (``None`` when it could not be built).
    """

    status: str
    error: str | None = None
    n_params: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_trainable(
    metaprogram: Mapping[str, Any], *, task: str, batch: int = 8, seed: int = 0
) -> TrainCheck:
    """Check that a metaprogram's model builds and trains one step, without training it.

    Builds the model on the CPU and runs one forward and backward pass of
    :func:`train`'s loss on the first ``batch`` training examples of ``task``.
    The global torch random state is left as it was.

    Args:
        metaprogram: validated settings with defaults filled.
        task: the task, as :func:`train` takes it.
        batch: training examples in the pass.
        seed: seeds the model's initialization.

    Returns:
        A :class:`TrainCheck`; failures of the model are reported, not raised.
    """
    m = dict(metaprogram)
    data = load_task_data(task, m.get("data.scaling", "standard"), "cpu")
    classification = data.kind != "regression"
    smoothing = m.get("train.label_smoothing", 0.0) if classification else 0.0
    model: nn.Module | None = None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(m, data.input_shape, data.n_outputs)
            x, y = data.x_train[:batch], data.y_train[:batch]
            loss = _loss(model(x), y, classification=classification, smoothing=smoothing)
            loss.backward()
    except Exception as exc:  # noqa: BLE001 - any failure of the model fails the check
        n_params = None if model is None else count_parameters(model)
        reason = f"the forward/backward pass failed: {type(exc).__name__}: {exc}"
        return TrainCheck("error", reason, n_params)
    n_params = count_parameters(model)
    if not math.isfinite(loss.item()):
        return TrainCheck("non_finite", f"the loss of one batch is {loss.item()}", n_params)
    bad = [
        name
        for name, p in model.named_parameters()
        if p.grad is not None and not bool(torch.isfinite(p.grad).all())
    ]
    if bad:
        return TrainCheck("non_finite", f"non-finite gradients in {', '.join(bad[:3])}", n_params)
    return TrainCheck("ok", n_params=n_params)
