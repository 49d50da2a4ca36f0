"""A GPT-2 planner trained from scratch on serialized campaigns, decoding only valid settings.

Training data are the stored runs of one env (default: the shipped reference
runs), leaving out its suite's held-out tasks. Runs are pooled per task and drawn into *pseudo-campaigns* of 2 to
``campaign_len`` steps, each sorted from worst to best score (failed steps
first), and serialized with :mod:`researchgym.serialize`. A small
``transformers`` GPT-2, built from a config (nothing downloaded), learns to
continue them, so it learns which settings come after a history of worse ones.

Acting replays the same picture: the campaign so far, sorted worst to best,
then ``[STEP]``; the next step's settings are decoded one by one in the
schema's order, each sampled from the model's logits masked to that setting's
value tokens (inactive settings are skipped, pinned ones are forced), so every
proposal is a valid metaprogram. With ``n_candidates > 1`` several are decoded
and the one with the best predicted score (the expected value of the model's
score token) is kept; the candidates are decoded together as one batch. A
proposal identical to an earlier step is resampled.

    researchgym train-planner --env researchgym/Synthetic-v0 --out runs/transformer_planner
    researchgym rollout --agent transformer --policy runs/transformer_planner --env researchgym/Synthetic-v0 --steps 20
    python -m agents.transformer_planner --env researchgym/Tabular-v0 --timesteps 1200
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from researchgym.envs.suites import suite_of
from researchgym.planning import (
    PlannerError,
    SearchPlanner,
    TrainArgs,
    arg,
    check_options,
    parse_args,
    run_from_args,
    training_kwargs,
)
from researchgym.serialize import (
    EOS,
    PAD,
    STEP,
    Campaign,
    SerializeError,
    Serializer,
    Step,
    build_tokenizer,
    load_campaigns,
)
from researchgym.spaces import Schema

DEFAULT_PATH = Path("runs/transformer_planner")
IGNORE = -100  # label of tokens the loss skips (padding and the header)


@dataclass
class TrainConfig:
    """What ``train_planner`` does; saved with the checkpoint as ``training.json``."""

    env_id: str = "researchgym/Tabular-v0"
    """env whose stored runs to learn from (its schema is the planner's)"""
    stores: list[str] = field(default_factory=list)
    """stores to read runs from (default: the shipped reference runs)"""
    agent: str | None = None
    """only runs of this agent"""
    tasks: list[str] | None = None
    """only these tasks (default: every task in the store but the suite's held-out ones)"""
    exclude_tasks: list[str] = field(default_factory=list)
    """tasks never trained on (besides the suite's held-out ones)"""
    steps: int = 1200
    """optimizer steps"""
    batch_size: int = 16
    """pseudo-campaigns per optimizer step"""
    lr: float = 2e-3
    """peak learning rate (linear warm-up, cosine decay)"""
    campaign_len: int = 16
    """most steps in a pseudo-campaign"""
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    n_positions: int = 1024
    n_bins: int = 32
    """bins of each number's flat encoding"""
    score_bins: int = 64
    """bins of the validation score over [-1, 1]"""
    init_from: str | None = None
    """checkpoint to continue training from (its architecture and vocabulary are kept)"""
    val_fraction: float = 0.1
    """runs per task kept out of training to measure validation loss"""
    eval_every: int = 100
    seed: int = 0
    device: str = "cpu"


# --- data ---------------------------------------------------------------------------------
def _ordered(steps: Sequence[Step]) -> list[Step]:
    """Worst to best: failed steps first, then by score."""
    return sorted(steps, key=lambda s: -math.inf if s.score is None else s.score)


class CampaignSampler:
    """Draws pseudo-campaigns (token ids and labels) from per-task pools of steps."""

    def __init__(self, serializer: Serializer, campaigns: Sequence[Campaign], campaign_len: int):
        self.serializer = serializer
        self.campaign_len = campaign_len
        pools: dict[str, tuple[list[int], list[tuple[float, list[int]]]]] = {}
        for campaign in campaigns:
            _, pool = pools.setdefault(
                campaign.task,
                (
                    serializer.encode(serializer.header_tokens(campaign.env_id, campaign.features)),
                    [],
                ),
            )
            for step in campaign.steps:
                key = -math.inf if step.score is None else step.score
                pool.append((key, serializer.encode(serializer.step_tokens(step))))
        self.pools = [(h, p) for h, p in pools.values() if p]
        if not self.pools:
            raise PlannerError(
                "no stored steps to train on; check the store, env id and task filters"
            )

    def sample(self, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        header, pool = self.pools[int(rng.integers(len(self.pools)))]
        n = int(rng.integers(min(2, len(pool)), min(self.campaign_len, len(pool)) + 1))
        chosen = sorted(
            (pool[i] for i in rng.choice(len(pool), size=n, replace=False)), key=lambda x: x[0]
        )
        ids = list(header)
        for _, step_ids in chosen:
            ids += step_ids
        ids.append(self.serializer.vocab[EOS])
        labels = [IGNORE] * len(header) + ids[len(header) :]
        return ids, labels

    def batch(self, rng: np.random.Generator, size: int, max_len: int) -> dict[str, torch.Tensor]:
        rows = [self.sample(rng) for _ in range(size)]
        width = min(max_len, max(len(ids) for ids, _ in rows))
        pad = self.serializer.vocab[PAD]
        input_ids = torch.full((size, width), pad, dtype=torch.long)
        labels = torch.full((size, width), IGNORE, dtype=torch.long)
        mask = torch.zeros((size, width), dtype=torch.long)
        for i, (ids, labs) in enumerate(rows):
            ids, labs = ids[:width], labs[:width]
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(labs)] = torch.tensor(labs)
            mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def _split(
    campaigns: Sequence[Campaign], fraction: float, seed: int
) -> tuple[list[Campaign], list[Campaign]]:
    """Split each campaign's steps into train and validation by a seeded draw."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in campaigns:
        held = rng.random(len(c.steps)) < fraction
        train.append(
            Campaign(c.env_id, c.task, c.features, [s for s, h in zip(c.steps, held) if not h])
        )
        val.append(Campaign(c.env_id, c.task, c.features, [s for s, h in zip(c.steps, held) if h]))
    return train, val


def build_model(serializer: Serializer, config: TrainConfig) -> Any:
    """A GPT-2 language model over the serializer's vocabulary, randomly initialised."""
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = serializer.vocab
    gpt = GPT2Config(
        vocab_size=len(vocab),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=vocab["[BOS]"],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[PAD],
    )
    return GPT2LMHeadModel(gpt)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide transformers' own progress bars (loading and saving weights)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def _plot_losses(history: list[dict[str, float]], path: Path, title: str) -> Path:
    from researchgym.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(h["step"], h["train_loss"]) for h in history if "train_loss" in h]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", alpha=0.7)
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy per token")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def train_planner(
    config: TrainConfig | None = None,
    *,
    out: str | Path = DEFAULT_PATH,
    progress: Callable[[int, float], None] | None = None,
    **overrides: Any,
) -> Path:
    """Train the transformer planner (from scratch, or on from ``init_from``) and save a checkpoint.

    Args:
        config: what to train (fields of :class:`TrainConfig` may also be given as keywords).
        out: checkpoint directory: ``save_pretrained`` model and tokenizer,
            ``serializer.json``, ``training.json`` (config, losses, seconds) and ``loss.png``.
        progress: called as ``progress(steps_done, train_loss)`` after each optimizer step.

    Returns:
        The checkpoint directory.
    """
    config = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    from researchgym.envs.replay import REFERENCE_STORE

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    suite = suite_of(config.env_id)
    schema = suite.make_schema()
    if config.init_from is not None:
        try:
            serializer = Serializer.load(config.init_from, schema)
        except SerializeError as exc:
            raise PlannerError(f"init_from={config.init_from}: {exc}") from None
    else:
        serializer = Serializer(
            schema, [config.env_id], n_bins=config.n_bins, score_bins=config.score_bins
        )
    stores = config.stores or [str(REFERENCE_STORE)]
    excluded = {*config.exclude_tasks, *(suite.held_out_tasks if config.tasks is None else ())}
    campaigns = [
        c
        for store in stores
        for c in load_campaigns(
            store, config.env_id, schema, agent=config.agent, tasks=config.tasks
        )
        if c.task not in excluded
    ]
    if not campaigns:
        raise PlannerError(
            f"no stored runs of {config.env_id} in {', '.join(stores)} (agent={config.agent}, tasks={config.tasks}, "
            f"excluding {sorted(excluded)}); generate some with `researchgym generate`"
        )
    train_part, val_part = _split(campaigns, config.val_fraction, config.seed)
    sampler = CampaignSampler(serializer, train_part, config.campaign_len)
    val_sampler = (
        CampaignSampler(serializer, val_part, config.campaign_len)
        if any(c.steps for c in val_part)
        else None
    )

    device = torch.device(config.device)
    if config.init_from is not None:
        from transformers import GPT2LMHeadModel

        with _quiet():
            model = GPT2LMHeadModel.from_pretrained(config.init_from).to(device)
    else:
        model = build_model(serializer, config).to(device)
    model.loss_type = (
        "ForCausalLM"  # the loss it computes anyway, named so transformers does not warn
    )
    arch = {k: getattr(model.config, k) for k in ("n_layer", "n_head", "n_embd", "n_positions")}
    config = replace(
        config, **arch, n_bins=serializer.n_bins, score_bins=serializer.score_bins
    )  # as trained
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    warmup = max(1, config.steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    val_rng = np.random.default_rng(config.seed + 1)
    val_batches = (
        [val_sampler.batch(val_rng, config.batch_size, model.config.n_positions) for _ in range(4)]
        if val_sampler
        else []
    )
    history: list[dict[str, float]] = []
    for step in range(config.steps):
        model.train()
        batch = {
            k: v.to(device)
            for k, v in sampler.batch(rng, config.batch_size, model.config.n_positions).items()
        }
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        record = {"step": step + 1, "train_loss": float(loss.detach())}
        if val_batches and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
            model.eval()
            with torch.no_grad():
                record["val_loss"] = float(
                    np.mean(
                        [
                            float(model(**{k: v.to(device) for k, v in b.items()}).loss)
                            for b in val_batches
                        ]
                    )
                )
        history.append(record)
        if progress is not None:
            progress(step + 1, record["train_loss"])

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _quiet():
        model.cpu().save_pretrained(out)
    build_tokenizer(serializer).save_pretrained(out)
    serializer.save(out)
    (out / "training.json").write_text(
        json.dumps(
            {
                "config": asdict(config),
                "tasks": sorted({c.task for c in campaigns}),
                "n_runs": sum(len(c.steps) for c in campaigns),
                "parameters": sum(p.numel() for p in model.parameters()),
                "seconds": time.perf_counter() - started,
                "history": history,
            },
            indent=1,
        )
    )
    _plot_losses(history, out / "loss.png", f"transformer planner on {config.env_id}")
    return out


def train(
    env_id: str,
    *,
    total_timesteps: int = TrainConfig.steps,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    save_path: str | Path = DEFAULT_PATH,
    store: Any = None,
    budget: int | None = None,
    n_envs: int = 1,
    progress: Callable[[int], None] | None = None,
    data: str | Path | Sequence[str | Path] | None = None,
    **config: Any,
) -> Path:
    """``researchgym train --agent transformer``: the trainer protocol over :func:`train_planner`.

    Training is offline: ``total_timesteps`` counts optimizer steps over the stored
    runs of ``env_id`` in ``data`` (one store or several; default: the shipped
    reference runs), and no experiment is run, so ``store``, ``budget``, ``n_envs``
    and ``fixed`` (pins apply when acting) have nothing to do. Other keywords are
    :class:`TrainConfig` fields.
    """
    config = check_options(
        TrainConfig,
        config,
        owner="transformer training",
        exclude={"env_id", "seed", "stores", "steps"},  # given as arguments
    )
    if data is None:
        stores = []
    elif isinstance(data, (str, Path)):
        stores = [str(data)]
    else:
        stores = [str(d) for d in data]
    return train_planner(
        env_id=env_id,
        stores=stores,
        steps=total_timesteps,
        seed=seed,
        out=save_path,
        progress=None if progress is None else (lambda done, _loss: progress(done)),
        **config,
    )


# --- acting -------------------------------------------------------------------------------
def _cache_argument(model: Any) -> str:
    """Keyword of the key/value cache (``cache`` in transformers 5, ``past_key_values`` before)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


class TransformerPlanner(SearchPlanner):
    """Proposes the next metaprogram by constrained decoding from a trained checkpoint.

    Args:
        policy: checkpoint directory from :func:`train_planner` (default ``runs/transformer_planner``).
        env_id: env token of the header (default: the env the checkpoint was trained on).
        temperature: sampling temperature of each setting's token (0: most likely token).
        n_candidates: proposals decoded per step; the best predicted score is kept.
        max_tries: resamples of a proposal that repeats an earlier step.
        device: torch device of the model.
    """

    name = "transformer"
    interface = "dict"

    def __init__(
        self,
        policy: str | Path | None = None,
        env_id: str | None = None,
        temperature: float = 1.0,
        n_candidates: int = 8,
        max_tries: int = 5,
        device: str = "cpu",
        model: Any = None,
        serializer: Serializer | None = None,
    ):
        if temperature < 0 or n_candidates < 1 or max_tries < 1:
            raise PlannerError(
                f"temperature={temperature} must be >= 0, n_candidates={n_candidates} and "
                f"max_tries={max_tries} >= 1"
            )
        self.policy = Path(policy) if policy is not None else DEFAULT_PATH
        if model is None and not (self.policy / "config.json").exists():
            raise PlannerError(
                f"no trained transformer planner at {self.policy}; train one with "
                "`researchgym train-planner --env ENV --out DIR` and pass --policy DIR"
            )
        self.env_id = env_id
        self.temperature = float(temperature)
        self.n_candidates = int(n_candidates)
        self.max_tries = int(max_tries)
        self.device = torch.device(device)
        self.model = model
        self.serializer = serializer

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        if self.serializer is None or self.serializer.schema.names != schema.names:
            try:
                self.serializer = Serializer.load(self.policy, schema)
            except SerializeError as exc:
                raise PlannerError(f"{self.policy}: {exc}") from None
        if self.model is None:
            from transformers import GPT2LMHeadModel

            with _quiet():
                self.model = GPT2LMHeadModel.from_pretrained(self.policy)
        self.model.to(self.device).eval()
        self.generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self.history: list[Step] = []
        self.features: Any = None
        self._last: dict[str, Any] | None = None
        self.predicted: list[float] = []

    # -- decoding --
    def _context(self) -> list[int]:
        s = self.serializer
        env_id = self.env_id or s.env_ids[0]
        header = s.encode(s.header_tokens(env_id, self.features))
        steps = [s.encode(s.step_tokens(step)) for step in _ordered(self.history)]
        room = self.model.config.n_positions - len(header) - 1 - 2 * len(self.schema) - 1
        while steps and sum(map(len, steps)) > room:
            steps.pop(0)  # drop the worst steps first
        return header + [x for ids in steps for x in ids] + [s.vocab[STEP]]

    def _pick(self, logits: torch.Tensor, allowed: list[int]) -> int:
        sub = logits[allowed].float()
        if self.temperature == 0:
            return allowed[int(torch.argmax(sub))]
        probs = torch.softmax(sub / self.temperature, dim=-1)
        return allowed[int(torch.multinomial(probs, 1, generator=self.generator))]

    @torch.no_grad()
    def decode(self, context: Sequence[int], n: int = 1) -> list[tuple[dict[str, Any], float]]:
        """``n`` constrained proposals after ``context``, decoded as one batch, with predicted scores.

        Candidates share the context's key/value cache. Where one candidate has a
        token to feed and another has none (an inactive setting, a value without an
        offset token) the other is fed a masked pad, and position ids count only
        real tokens, so each candidate sees exactly its own sequence.
        """
        s, vocab = self.serializer, self.serializer.vocab
        out = self.model(torch.tensor([list(context)], device=self.device), use_cache=True)
        cache = _cache_of(out)
        cache.batch_repeat_interleave(n)
        logits = out.logits[0, -1].repeat(n, 1)
        positions = torch.full((n, 1), len(context), dtype=torch.long, device=self.device)
        mask = torch.ones((n, len(context)), dtype=torch.long, device=self.device)
        cache_keyword = _cache_argument(self.model)

        def feed(tokens: list[int | None]) -> None:
            nonlocal cache, mask
            real = torch.tensor([t is not None for t in tokens], device=self.device)
            if not bool(real.any()):
                return
            ids = torch.tensor(
                [[vocab[PAD] if t is None else t] for t in tokens], device=self.device
            )
            mask = torch.cat([mask, real[:, None].long()], dim=1)
            step = self.model(
                ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{cache_keyword: cache},
            )
            cache = _cache_of(step)
            logits[real] = step.logits[real, -1]
            positions.add_(real[:, None].long())

        values: list[dict[str, Any]] = [{} for _ in range(n)]
        for setting in self.schema:
            active = [
                all(v.get(p) in allowed for p, allowed in setting.when.items()) for v in values
            ]
            if not any(active):
                continue
            if setting.name in self.fixed:
                tokens = [vocab[t] for t in s.value_tokens(setting, self.fixed[setting.name])]
                for token in tokens:
                    feed([token if a else None for a in active])
                for v, a in zip(values, active):
                    if a:
                        v[setting.name] = self.fixed[setting.name]
                continue
            allowed = [vocab[t] for t in s.allowed_values(setting)]
            firsts = [self._pick(logits[i], allowed) if a else None for i, a in enumerate(active)]
            feed(firsts)
            first_toks = [None if f is None else s.inverse_vocab[f] for f in firsts]
            offsets = [None if t is None else s.allowed_offsets(setting, t) for t in first_toks]
            seconds = [
                self._pick(logits[i], [vocab[t] for t in o]) if o else None
                for i, o in enumerate(offsets)
            ]
            feed(seconds)
            for v, first, second in zip(values, first_toks, seconds):
                if first is not None:
                    v[setting.name] = s.read_value(
                        setting, first, None if second is None else s.inverse_vocab[second]
                    )
        score_ids = [vocab[t] for t in s.score_tokens]
        probs = torch.softmax(logits[:, score_ids].float(), dim=-1).cpu().numpy()
        predicted = probs @ s.score_values()
        return [(self.schema.validate(v), float(p)) for v, p in zip(values, predicted)]

    def propose(self, observation: Any) -> dict[str, Any]:
        if self.features is None:
            task = observation.get("task") if isinstance(observation, Mapping) else None
            self.features = (
                None if task is None else [float(v) for v in np.asarray(task).reshape(-1)]
            )
        context = self._context()
        seen = [step.metaprogram for step in self.history]
        fresh: list[tuple[dict[str, Any], float]] = []
        for _ in range(self.max_tries):  # decode again only the slots that repeated a step
            batch = self.decode(context, self.n_candidates - len(fresh))
            for candidate in batch:
                if candidate[0] not in seen:
                    seen.append(candidate[0])
                    fresh.append(candidate)
            if len(fresh) == self.n_candidates:
                break
        best = max(fresh or batch, key=lambda c: c[1])
        self._last = best[0]
        self.predicted.append(best[1])
        return best[0]

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        trained = metaprogram or self._last
        if trained is None:
            return
        ok = info.get("status", "ok") == "ok"
        score = (info.get("metrics") or {}).get("score") if ok else None
        if ok and score is None and "metrics" not in info:  # optimize(): the value is the score
            score = reward
        self.history.append(Step(self.schema.validate(trained), score, info.get("status", "ok")))
        self._last = None


# --- python -m agents.transformer_planner -------------------------------------------------
_PLANNER = inspect.signature(TransformerPlanner).parameters


@dataclass
class Args(TrainArgs):
    """Train the transformer planner on stored runs, then run campaigns with it."""

    timesteps: int | None = arg(TrainConfig.steps, "optimizer steps over the stored runs")
    data: str | None = arg(None, "store to learn from (default: the shipped reference runs)")
    temperature: float = arg(
        _PLANNER["temperature"].default, "sampling temperature (0: greedy decoding)"
    )
    n_candidates: int = arg(
        _PLANNER["n_candidates"].default, "proposals decoded per step, the best predicted kept"
    )


if __name__ == "__main__":
    args = parse_args(Args)
    path = args.policy
    if path is None:
        options = training_kwargs(args)
        print(f"training on stored runs of {args.env} ...", flush=True)
        path = train(args.env, **options, data=args.data)
        print(f"\nsaved planner to {path}")
    planner = TransformerPlanner(path, temperature=args.temperature, n_candidates=args.n_candidates)
    run_from_args(planner, args)
