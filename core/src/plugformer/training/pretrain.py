"""Pretraining: the LightningModule, the DataModule, and ``pretrain(config)``.

``pretrain`` trains (or loads) the tokenizer, builds the token cache, runs Lightning's
Trainer with the configured objective, logs train/val loss, perplexity and bits per byte
to CSV, keeps ``last.ckpt`` for ``--resume``, and writes the backbone checkpoint
``out_dir/final`` atomically.

The model comes from the family ``model.family`` names (native GPT, encdec, a plugin's): what
pretraining needs of it (``forward`` to hidden states, ``lm_logits``, ``config``, ``family``;
:func:`plugformer.models.families.check_pretrainable`) is checked before anything is written.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from plugformer.config import PretrainConfig
from plugformer.data.corpus import BlockDataset, TokenCache, ValBlocks
from plugformer.fileio import ensure_dir
from plugformer.models.families import check_model_family, check_pretrainable, get_family
from plugformer.training.common import (
    adamw,
    check_finite,
    check_resume_fits,
    check_resume_settings,
    clip_gradients,
    param_groups,
    resolve_compile,
    resume_state,
)
from plugformer.training.losses import linear_cross_entropy
from plugformer.training.objectives import IGNORE, Objective
from plugformer.training.schedule import BudgetSchedule

__all__ = ["PretrainData", "PretrainModule", "check_model", "pretrain"]


class PretrainModule(L.LightningModule):
    def __init__(
        self, config: PretrainConfig, objective: Objective, mask_id: int, bytes_per_token: float
    ):
        super().__init__()
        self.config = config
        self.objective = objective
        self.mask_id = mask_id
        self.bytes_per_token = bytes_per_token
        # Built by the family the config names (native GPT, encdec, a plugin's).
        family = get_family(config.model.family)
        self.model = family.build(config.model.model_dump())
        check_pretrainable(self.model, family.name)
        # A bias-free nn.Linear ``lm_head`` is fused with the loss (lm_logits must be it)
        head = getattr(self.model, "lm_head", None)
        self._fused = isinstance(head, torch.nn.Linear) and head.bias is None
        t = config.trainer
        self.compiled = resolve_compile(t.compile, t.max_steps, t.accelerator) and getattr(
            self.model, "compilable", True
        )  # a family may opt out (data-dependent shapes)
        self._forward = torch.compile(self.model) if self.compiled else self.model
        self._val_nats = 0.0
        self._val_count = 0

    def _nats(self, hidden: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
        """Cross-entropy of the targets ``y`` (B, T) from ``hidden`` (B, T, C)."""
        if self._fused:  # the (B, T, V) logits are never materialised
            return linear_cross_entropy(
                hidden, self.model.lm_head.weight, y, ignore_index=IGNORE, reduction=reduction
            )
        logits = self.model.lm_logits(hidden)  # (B, T, V)
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE, reduction=reduction
        )

    def _loss(self, block: torch.Tensor) -> torch.Tensor:
        x, y = self.objective.make_batch(block, self.config.model.vocab_size, self.mask_id)
        return self._nats(self._forward(x), y, "mean")  # hidden (B, T, C)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        if self.trainer.world_size == 1:  # under DDP a nan loss shows in the all-reduced gradients
            check_finite(loss.detach(), self.global_step)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None
    ) -> None:
        """Clip the global gradient norm and refuse a non-finite one (:func:`clip_gradients`)."""
        clip_gradients(self, self.model.parameters(), gradient_clip_val)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        x, y = self.objective.make_batch(batch, self.config.model.vocab_size, self.mask_id)
        nats = self._nats(self.model(x), y, "sum")
        self._val_nats += float(nats)
        self._val_count += int((y != IGNORE).sum())

    def on_validation_epoch_end(self) -> None:
        # Sum over processes before dividing: the exact mean under DDP.
        t = torch.tensor([self._val_nats, float(self._val_count)], dtype=torch.float64)
        t = self.all_gather(t).reshape(-1, 2).sum(0) if self.trainer.world_size > 1 else t
        self._val_nats, self._val_count = 0.0, 0
        val_loss = float(t[0] / t[1].clamp(min=1))
        self.log("val_loss", val_loss, prog_bar=True, sync_dist=False)
        self.log("val_ppl", math.exp(min(val_loss, 50)))
        if self.objective.causal and getattr(self.objective, "next_token", True):
            self.log("val_bpb", val_loss / math.log(2) / self.bytes_per_token, prog_bar=True)

    def configure_optimizers(self) -> Any:
        # The learning rate is set before every step by plugformer.training.schedule.BudgetSchedule.
        o = self.config.optim
        return adamw(param_groups(self.model, o.weight_decay), lr=o.lr, betas=o.betas)


class PretrainData(L.LightningDataModule):
    def __init__(self, cache: TokenCache, config: PretrainConfig):
        super().__init__()
        self.cache, self.config = cache, config

    def train_dataloader(self) -> DataLoader:
        t = self.config.trainer
        trainer = self.trainer
        world = trainer.world_size if trainer else 1
        rank = trainer.global_rank if trainer else 0
        step = trainer.global_step if trainer else 0
        # Restart exactly where a resumed run stopped: the order is a function of the index.
        start = step * t.batch_size * t.accumulate_grad_batches * world
        ds = BlockDataset(
            self.cache.tokens("train"),
            self.config.model.max_seq_len,
            self.config.seed,
            start,
            rank,
            world,
        )
        return DataLoader(ds, batch_size=t.batch_size, num_workers=self.config.data.num_workers)

    def val_dataloader(self) -> DataLoader:
        t = self.config.trainer
        trainer = self.trainer
        world = trainer.world_size if trainer else 1
        rank = trainer.global_rank if trainer else 0
        ds = ValBlocks(
            self.cache.tokens("val"),
            self.config.model.max_seq_len,
            t.val_batches * t.batch_size * world,
        )
        idx = list(range(rank, len(ds), world))  # shard validation blocks across processes
        return DataLoader(torch.utils.data.Subset(ds, idx), batch_size=t.batch_size)


def prepare_tokenizer(config: PretrainConfig) -> Any:
    """The run's tokenizer: config.tokenizer.path, the one saved in out_dir, or a new one."""
    from plugformer.data.corpus import load_documents

    out = Path(config.out_dir)
    ensure_dir(out)
    if config.tokenizer.path:
        return _prepare_tokenizer(config, out, [])
    return _prepare_tokenizer(config, out, load_documents(config.data.corpus))


def _tokenizer_recipe(config: PretrainConfig, texts: list[str]) -> dict[str, Any]:
    """What decides a trained tokenizer: its settings and a hash of its training texts."""
    import hashlib

    h = hashlib.sha256()
    for text in texts:
        h.update(hashlib.sha256(text.encode("utf-8")).digest())
    return {
        "vocab_size": config.tokenizer.vocab_size,
        "min_frequency": config.tokenizer.min_frequency,
        "texts_sha256": h.hexdigest(),
    }


def _prepare_tokenizer(
    config: PretrainConfig, out: Path, docs: list[Any], resume: bool = False
) -> Any:
    """``out/tokenizer.json`` is reused only when ``out/tokenizer.recipe.json`` shows it was
    trained from the same texts and settings (a leftover of another run is retrained); a
    resumed run refuses a tokenizer that changed under it."""
    from plugformer.data.recipes import split_of
    from plugformer.errors import ConfigError
    from plugformer.fileio import atomic_write_json
    from plugformer.tokenizer import Tokenizer, train_tokenizer

    saved, recipe_file = out / "tokenizer.json", out / "tokenizer.recipe.json"
    if config.tokenizer.path:
        return Tokenizer.from_file(config.tokenizer.path)
    fr = (1.0 - config.data.val_fraction, config.data.val_fraction, 0.0)
    texts = [d.text for d in docs if split_of(d.id, fr) == "train"]
    recipe = _tokenizer_recipe(config, texts)
    if saved.is_file():
        try:
            matches = json.loads(recipe_file.read_text(encoding="utf-8")) == recipe
        except (OSError, ValueError):
            matches = False
        if matches or (resume and not recipe_file.exists()):  # a run from before recipes
            return Tokenizer.from_file(saved)
        if resume:
            raise ConfigError(
                f"--resume: {saved} was not trained from this config's corpus and tokenizer "
                "settings; resume with the config of the interrupted run"
            )
        print(
            f"[pretrain] {saved} is from another corpus or settings: training a new tokenizer",
            file=sys.stderr,
        )
    tok = train_tokenizer(texts, config.tokenizer.vocab_size, config.tokenizer.min_frequency)
    tok.save(saved)
    atomic_write_json(recipe_file, recipe)
    return tok


class _Throughput(L.Callback):
    """Tokens per second over the run (per process), excluding validation."""

    def __init__(self, tokens_per_batch: int):
        self.tokens_per_step = tokens_per_batch
        self.train_time = 0.0
        self.steps = 0
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.train_time += time.perf_counter() - self._t0
        self.steps += 1

    @property
    def tokens_per_second(self) -> float:
        return self.steps * self.tokens_per_step / max(self.train_time, 1e-9)


class _ProgressLog(L.Callback):
    """One line per validation (step, losses, elapsed, time left) for logs without a progress bar."""

    def __init__(self, max_steps: int, schedule: Any = None):
        self.max_steps = max_steps
        self.schedule = schedule
        self._t0 = time.perf_counter()
        self._step0: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.global_step == 0:
            return
        if self._step0 is None:
            self._step0 = 0
        step = trainer.global_step
        elapsed = time.perf_counter() - self._t0
        left = elapsed / max(1, step - self._step0) * (self.max_steps - step)
        if self.schedule is not None and self.schedule.max_seconds:
            left = max(0.0, self.schedule.max_seconds - self.schedule.seconds())
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        shown = ", ".join(
            f"{k} {m[k]:.3f}" for k in ("train_loss", "val_loss", "val_bpb") if k in m
        )
        print(
            f"[pretrain] step {step}/{self.max_steps}: {shown} | elapsed {elapsed / 60:.1f} min, "
            f"about {left / 60:.1f} min left",
            file=sys.stderr,
            flush=True,
        )


def _num_params(model: Any) -> int:
    """All parameters: the model's own ``num_params`` where it has one (optional)."""
    count = getattr(model, "num_params", None)
    return count(non_embedding=False) if count else sum(p.numel() for p in model.parameters())


def check_model(config: PretrainConfig, source: str = "<config>") -> None:
    """The config's family, its options and what pretraining needs of its model, checked
    before anything is written: the model is built on the meta device (no memory, no work)."""
    from plugformer.errors import PlugformerError

    check_model_family(config.model, source)
    if config.init_from:  # the parent's shape: checked when PretrainModule builds it
        return
    family = get_family(config.model.family)
    model_config = {**config.model.model_dump(), "vocab_size": config.tokenizer.vocab_size}
    try:
        with torch.device("meta"):
            model = family.build(model_config)
    except PlugformerError:
        raise
    except Exception:  # a build meta tensors cannot run: PretrainModule checks the real model
        return
    check_pretrainable(model, family.name)


def pretrain(config: PretrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run pretraining; returns a summary (paths, validation metrics, baselines, speed).

    The model is checked first (:func:`check_model`). The output directory is held for the run
    (:mod:`plugformer.outdir`); SIGINT/SIGTERM stop at a step boundary, writing
    ``checkpoints/last.ckpt`` for ``resume=True``.
    """
    from plugformer.outdir import claim

    check_model(config)
    with claim(config.out_dir, "pretrain"):
        return _pretrain(config, resume)


def _pretrain(config: PretrainConfig, resume: bool) -> dict[str, Any]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from plugformer.checkpoint import load_backbone, save_backbone
    from plugformer.data.cache import writable_home
    from plugformer.data.corpus import Corpus, Document, build_token_cache, load_documents
    from plugformer.data.mixture import mix_tasks, task_sources
    from plugformer.fileio import atomic_write_json
    from plugformer.hook_calls import extra_callbacks
    from plugformer.plugin_registries import objectives
    from plugformer.signals import checkpoint_on_signal, fit
    from plugformer.training.common import build_trainer, seed_everything

    t_start = time.time()
    out = Path(config.out_dir)
    ensure_dir(out)
    last = out / "checkpoints" / "last.ckpt"
    resumed = resume_state(last, resume, "a pretraining run", "out_dir")
    objective = objectives().get(config.objective)
    seed_everything(config.seed)

    docs = load_documents(config.data.corpus)
    parent = load_backbone(config.init_from) if config.init_from else None
    block = config.model.max_seq_len
    if parent is not None:  # continued pretraining: the parent's shape and tokenizer
        config = config.model_copy(deep=True)
        config.model = type(config.model).model_validate(parent.manifest["model_config"])
        tokenizer, block = parent.tokenizer, config.model.max_seq_len
        tokenizer.save(out / "tokenizer.json")
    else:
        # The tokenizer learns from the task documents too (their vocabulary, their languages),
        # read whole: only with the tokenizer can a task cut them to the context.
        whole = task_sources(config.data.tasks) if config.data.tasks else []
        task_docs = [
            Document(f"task:{s.name}:{i}", d) for s in whole for i, d in enumerate(s.documents)
        ]
        tokenizer = _prepare_tokenizer(config, out, docs + task_docs, resume=resume)
    # each document fits a block of `block` tokens with its <eos> (data.mixture)
    sources = task_sources(config.data.tasks, tokenizer, block - 1) if config.data.tasks else []
    home = writable_home()  # checked once, before the token caches are written under it
    cache = build_token_cache(docs, tokenizer, config.data.val_fraction, home)
    mixture: dict[str, Any] | None = None
    if sources:
        cache, mixture = mix_tasks(cache, sources, tokenizer, home, config.seed, block)
        shown = ", ".join(f"{k} {v['share']:.1%}" for k, v in mixture.items())
        print(f"[pretrain] token shares: {shown}", file=sys.stderr, flush=True)
    config = config.model_copy(deep=True)
    config.model.vocab_size = tokenizer.vocab_size
    config.model.causal = objective.causal
    module = PretrainModule(config, objective, tokenizer.mask_id, cache.bytes_per_token)
    if resumed is not None:  # before anything of the interrupted run is rewritten
        check_resume_fits(last, resumed["shapes"], module)
        check_resume_settings(out / "config.json", config.model_dump(mode="json"))
    atomic_write_json(out / "config.json", config.model_dump(mode="json"))
    if parent is not None:
        module.model.load_state_dict(parent.model.state_dict())
    data = PretrainData(cache, config)
    t = config.trainer
    ckpt = ModelCheckpoint(
        dirpath=out / "checkpoints",
        save_last=True,
        save_top_k=0,
        every_n_train_steps=t.checkpoint_every,
        enable_version_counter=False,  # a rerun overwrites last.ckpt; never a stale one beside last-v1.ckpt
    )
    # on_train_batch_end fires once per micro-batch: count the tokens of one micro-batch.
    throughput = _Throughput(t.batch_size * config.model.max_seq_len)
    o = config.optim
    schedule = BudgetSchedule(
        o.warmup_steps, t.max_steps, t.max_minutes * 60 if t.max_minutes else None, o.min_lr_ratio
    )
    on_signal = checkpoint_on_signal(last)
    callbacks = [
        ckpt,
        on_signal,
        throughput,
        schedule,
        _ProgressLog(t.max_steps, schedule),
        *extra_callbacks("pretrain", config),
    ]
    # A resumed run logs into logs/resumeN/ so the CSV of the killed run is kept.
    version = ""
    if resume:
        version = f"resume{len(list((out / 'logs').glob('resume*'))) + 1}"
    trainer = build_trainer(
        t,
        out,
        callbacks,
        logger_version=version,
        val_check_interval=min(t.val_every, t.max_steps) * t.accumulate_grad_batches,
        limit_val_batches=t.val_batches,
        grad_clip=config.optim.grad_clip,
    )
    fit(
        trainer,
        on_signal,
        module,
        datamodule=data,
        ckpt_path=str(last) if resume else None,
        weights_only=True,
    )
    val = trainer.validate(module, datamodule=data, verbose=False)[0] if trainer.global_step else {}
    summary: dict[str, Any] = {
        "steps": trainer.global_step,
        "world_size": trainer.world_size,
        # torch's intra-op threads as training ended: an ``auto`` count follows the load
        "threads": torch.get_num_threads(),
        "objective": config.objective,
        "n_params": _num_params(module.model),
        "train_tokens": cache.meta["train_tokens"],
        "mixture": mixture,
        "parent": _parent_info(parent),
        "val_tokens": cache.meta["val_tokens"],
        "tokens_per_second": round(
            throughput.tokens_per_second * trainer.world_size, 1
        ),  # all processes
        "wall_seconds": round(time.time() - t_start, 1),
        "train_seconds": round(schedule.seconds(), 1),
        "budget_seconds": schedule.max_seconds,
        "final_lr": schedule.final_lrs(trainer)[0] if trainer.optimizers else None,
        "final_lr_multiplier": round(schedule.last_multiplier, 6),
        "min_lr": o.lr * o.min_lr_ratio,
        **{k: float(v) for k, v in val.items()},
    }
    if objective.causal and getattr(objective, "next_token", True):
        summary["unigram_val_bpb"] = Corpus.unigram_bits_per_byte(cache, tokenizer.vocab_size)
    if trainer.is_global_zero:
        final = save_backbone(
            out / "final",
            module.model,
            tokenizer,
            {
                "objective": config.objective,
                "metrics": summary,
                "corpus": config.data.corpus,
                "tasks": [t.model_dump() for t in config.data.tasks],
                "mixture": mixture,
                "seed": config.seed,
                "parent": _parent_info(parent),
            },
        )
        summary["checkpoint"] = str(final)
        atomic_write_json(out / "summary.json", summary)
    return summary


def _parent_info(parent: Any) -> dict[str, Any] | None:
    """What a continued run started from: its path, weights hash and its own pretraining."""
    if parent is None:
        return None
    metrics = parent.manifest.get("metrics", {})
    return {
        "path": parent.path,
        "weights_sha256": parent.manifest.get("weights_sha256"),
        "steps": metrics.get("steps"),
        "train_seconds": metrics.get("train_seconds"),
        "mixture": parent.manifest.get("mixture"),
    }


def read_metrics_csv(out_dir: str | Path) -> list[dict[str, str]]:
    """Rows of the CSV logs of a run and of its resumptions, in order (``out_dir/logs``)."""
    import csv

    logs = Path(out_dir) / "logs"
    files = [
        logs / "metrics.csv",
        *sorted(logs.glob("resume*/metrics.csv"), key=lambda p: int(p.parent.name[6:])),
    ]
    rows: list[dict[str, str]] = []
    for path in files:
        if path.is_file():
            with open(path, newline="") as f:
                new = list(csv.DictReader(f))
            # A resumed run repeats the steps after its checkpoint: its rows replace those.
            first = min((int(r["step"]) for r in new), default=None)
            if first is not None:
                rows = [r for r in rows if int(r["step"]) < first]
            rows.extend(new)
    return rows
