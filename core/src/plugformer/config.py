"""Configuration: pydantic v2 models for every run, TOML loading, ``--set`` overrides, schema.

Each field is documented where it is declared; cross-field rules live in one model
validator per rule; unknown keys are errors (``extra="forbid"``) with a did-you-mean.
Model presets live in :data:`MODEL_PRESETS` (``model.preset = "tiny"``). Reading TOML,
``--set`` overrides and one-line validation errors are :mod:`plugformer.tomlconfig`
(re-exported here).
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugformer.errors import ConfigError
from plugformer.tomlconfig import (  # re-exported: the loading half of the config API
    apply_overrides,
    format_validation_error,
    load_toml,
    parse_model,
)

__all__ = [
    "MODEL_PRESETS",
    "DataConfig",
    "HardwareConfig",
    "InferenceConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "StrictModel",
    "TaskMix",
    "TokenizerConfig",
    "TrainerConfig",
    "apply_overrides",
    "format_validation_error",
    "load_config",
    "load_toml",
    "parse_model",
]


def _counts_not_flags(annotation: Any) -> bool:
    """Whether a field takes numbers but not booleans (``int``, ``float | None``, ...)."""
    args = set(typing.get_args(annotation)) or {annotation}
    return bool(args & {int, float}) and bool not in args


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, defaults are validated, a number
    is finite (``lr = inf`` would pass a ``gt=0`` bound and fail at the first step), and a
    number field refuses ``true``/``false`` (pydantic would take ``max_steps = true`` as 1)."""

    model_config = ConfigDict(
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(field.alias or name)
                if isinstance(value, bool) and _counts_not_flags(field.annotation):
                    raise ValueError(f"{name}: expected a number, got {str(value).lower()}")
        return data


SEED_MAX = 2**32 - 1
"""Largest seed: NumPy's seeding (``lightning.seed_everything``) takes 32-bit seeds."""
MAX_STEPS = 10**9
"""Largest step or epoch count. Past it a typo, not a plan: 2**63 passed the schema and
failed inside the first training batch with an OverflowError blamed on the task plugin."""
MAX_BATCH = 2**16
"""Largest batch (or micro-batches per step). 10**12 passed the schema and grew to 19 GB
before failing, deaf to SIGTERM inside one allocation."""

Beta = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


# Named model sizes (LitGPT-style presets). Fields given explicitly override the preset.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "micro": {"n_layers": 1, "d_model": 16, "n_heads": 2, "max_seq_len": 32},  # tests
    "tiny": {"n_layers": 2, "d_model": 64, "n_heads": 4, "max_seq_len": 64},
    "small": {"n_layers": 4, "d_model": 256, "n_heads": 4, "max_seq_len": 128},
    "base": {"n_layers": 6, "d_model": 384, "n_heads": 6, "max_seq_len": 256},
}


class ModelConfig(StrictModel):
    """The native GPT-style backbone (and the encoder–decoder, ``family = "encdec"``)."""

    family: str = "native"
    """Backbone family that builds the model (``native`` GPT, ``encdec`` encoder–decoder, or a
    plugin's that builds from this config)."""
    encoder_layers: int | None = Field(None, ge=1)
    """Encoder–decoder families: encoder blocks (default n_layers; n_layers counts the decoder's)."""
    preset: str | None = None
    """Name in MODEL_PRESETS whose values fill the fields not given explicitly."""
    n_layers: int = Field(4, ge=1)
    """Number of Transformer blocks."""
    d_model: int = Field(256, ge=4)
    """Width of the residual stream."""
    n_heads: int = Field(4, ge=1)
    """Attention heads; must divide d_model."""
    max_seq_len: int = Field(128, ge=2)
    """Longest sequence (context window) the model accepts."""
    mlp_ratio: float = Field(4.0, gt=0)
    """Hidden width of the MLP as a multiple of d_model."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on attention output and MLP (0 for short pretraining runs)."""
    positions: Literal["rope", "learned"] = "rope"
    """Rotary position embeddings or a learned absolute position table."""
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    """Normalisation layer of the pre-norm blocks."""
    causal: bool = True
    """Causal (GPT) attention; false gives a bidirectional encoder (masked-LM pretraining)."""
    attention: Literal["auto", "sdpa", "explicit"] = "auto"
    """How attention is computed; the same function either way, so it can change between
    runs of one checkpoint (as ``attn_implementation`` in transformers): ``sdpa`` is PyTorch's
    ``scaled_dot_product_attention``, ``explicit`` two batched products and a float32 softmax,
    ``auto`` explicit where that was measured faster — training in bfloat16 on a CPU over at
    most 128 positions, where the CPU flash kernel's backward is slow — and sdpa elsewhere."""
    tie_embeddings: bool = True
    """Share the token embedding matrix with the LM head."""
    bias: bool = False
    """Biases in linear layers (GPT-2 style); Llama style has none."""
    vocab_size: int | None = None
    """Set from the tokenizer; leave unset in configs."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Settings of a plugin's family (``[model.options]``, e.g. ``kernel_size = 3``), checked by
    the family's ``Options`` model when the config is validated and saved in checkpoints with
    the rest of ``[model]``; the core's families take none."""

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            name = data["preset"]
            if not isinstance(name, str) or name not in MODEL_PRESETS:
                hint = difflib.get_close_matches(str(name), MODEL_PRESETS, n=1)
                raise ValueError(
                    f"unknown preset {name!r}"
                    + (
                        f" (did you mean {hint[0]!r}?)"
                        if hint
                        else f"; one of {sorted(MODEL_PRESETS)}"
                    )
                )
            data = {**MODEL_PRESETS[name], **data}
        return data

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must divide d_model ({self.d_model})")
        if (self.d_model // self.n_heads) % 2 and self.positions == "rope":
            raise ValueError("rotary positions need an even head size (d_model / n_heads)")
        return self


class TokenizerConfig(StrictModel):
    """Byte-level BPE trained with Hugging Face `tokenizers`."""

    vocab_size: int = Field(8192, ge=300)
    """Target vocabulary size, special tokens included."""
    min_frequency: int = Field(2, ge=1)
    """Merges must occur at least this often in the training corpus."""
    path: str | None = None
    """An existing tokenizer.json to use instead of training one."""


class TaskMix(StrictModel):
    """A task whose training examples join the pretraining corpus (task-aware pretraining)."""

    spec: str = Field(min_length=1)
    """A task spec: a registered name (``plugformer tasks``) or a file; only its **train**
    split is read."""
    share: float = Field(gt=0, lt=1)
    """Fraction of the training tokens this task's documents make up (repeating or sampling
    its documents as needed); the text corpora make up the rest."""
    max_examples: int | None = Field(None, ge=1)
    """Use at most this many training examples (default: the spec's data.max_train, else all)."""


class DataConfig(StrictModel):
    """The pretraining corpus."""

    corpus: list[str] = Field(default_factory=lambda: ["news-2017-en"])
    """Text sources: dataset recipe names (their train split) and/or paths to .txt/.jsonl files."""
    tasks: list[TaskMix] = Field(default_factory=list)
    """Tasks mixed into pretraining, each as a token share: its plugin turns training examples
    into documents in the task's own format (``Task.pretrain_documents``)."""
    val_fraction: float = Field(0.02, gt=0, lt=0.5)
    """Share of text documents held out for validation (by a hash of each document); task
    documents always train (validation measures the text)."""

    @model_validator(mode="after")
    def _shares_leave_room_for_text(self) -> DataConfig:
        total = sum(t.share for t in self.tasks)
        if self.tasks and total >= 1:
            raise ValueError(
                f"data.tasks shares add up to {total:g}: they must leave the text corpora a share"
            )
        return self

    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes (0: load in the training process; blocks are memmapped)."""


class OptimConfig(StrictModel):
    """AdamW with linear warm-up then cosine decay."""

    lr: float = Field(1e-3, gt=0)
    """Peak learning rate."""
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    """Final learning rate as a fraction of lr."""
    weight_decay: float = Field(0.1, ge=0)
    """Decoupled weight decay (never applied to norms, biases or embeddings)."""
    betas: tuple[Beta, Beta] = (0.9, 0.95)
    """Adam betas, each in [0, 1)."""
    warmup_steps: int = Field(100, ge=0)
    """Linear warm-up steps."""
    grad_clip: float = Field(1.0, ge=0)
    """Clip the global gradient norm to this (0: no clipping)."""


class HardwareConfig(StrictModel):
    """Where and in what precision a run trains: the Lightning settings that pretraining
    (``[trainer]``) and fine-tuning (``[finetune]``) share, declared once with one set of
    defaults. Both sections keep these keys at their top level."""

    precision: Literal["auto", "32", "32-true", "bf16-mixed", "bf16-true", "16-mixed"] = "auto"
    """Lightning precision plugin; ``auto`` is resolved by
    :func:`plugformer.training.common.resolve_precision`: bf16-mixed where the CPU or GPU has
    native bf16 (measured 1.5× fp32 per step on AVX512-BF16), else 32-true."""
    strategy: str = "auto"
    """Lightning strategy: auto, ddp, ddp_spawn, fsdp, ..."""
    accelerator: str = "auto"
    """Lightning accelerator: auto, cpu, gpu."""
    devices: int | str = "auto"
    """Processes/devices per node."""
    num_nodes: int = Field(1, ge=1)
    """Nodes (torchrun/SLURM set the rendezvous)."""
    progress: bool = True
    """Show a progress bar."""

    def hardware(self) -> dict[str, Any]:
        """These settings alone, as keyword arguments for another :class:`HardwareConfig`."""
        return {name: getattr(self, name) for name in HardwareConfig.model_fields}


class TrainerConfig(HardwareConfig):
    """What Lightning's Trainer is given (the hardware settings of :class:`HardwareConfig`,
    and these)."""

    max_steps: int = Field(1000, ge=1, le=MAX_STEPS)
    """Optimiser steps."""
    max_minutes: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Wall-clock budget: the cosine schedule follows the fraction of it spent (or of
    max_steps, whichever is larger), so a run on a busy machine takes fewer steps but still
    anneals to its floor, and stops when it is spent."""
    batch_size: int = Field(32, ge=1, le=MAX_BATCH)
    """Sequences per micro-batch (per process)."""
    accumulate_grad_batches: int = Field(1, ge=1, le=MAX_BATCH)
    """Micro-batches per optimiser step."""
    compile: bool | Literal["auto"] = "auto"
    """Wrap the model with torch.compile; ``auto`` compiles runs of 500+ steps where a compiler
    exists (~30 s of compiling, then ~1.3× per bf16 step on CPU)."""
    val_every: int = Field(200, ge=1)
    """Validate every this many optimiser steps."""
    val_batches: int = Field(20, ge=1)
    """Batches per validation pass."""
    checkpoint_every: int = Field(200, ge=1)
    """Save last.ckpt every this many steps (for --resume)."""
    log_every: int = Field(10, ge=1)
    """Log the training loss every this many steps."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms (CPU runs are deterministic anyway)."""


class PretrainConfig(StrictModel):
    """A whole pretraining run (``plugformer pretrain CONFIG``)."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    objective: str = "clm"
    """Pretraining objective by name: clm (causal LM), mlm (masked LM), denoise (text
    infilling as ``corrupted <sep> original``, for encoder–decoders), or one a plugin adds."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Seeds Python, NumPy and torch (and the data order)."""
    out_dir: str = "runs/pretrain"
    """Where checkpoints, logs and the final backbone checkpoint (out_dir/final) go."""
    init_from: str | None = None
    """Continued pretraining: start from this backbone checkpoint's weights, model shape and
    tokenizer (``model`` and ``tokenizer`` are then ignored) with a fresh optimiser and
    schedule — e.g. the annealing phase of a warm-up–stable–decay run, on another mixture.
    The manifest records it as the parent."""

    @model_validator(mode="after")
    def _objective_matches_attention(self) -> PretrainConfig:
        if self.objective == "mlm" and self.model.causal:
            self.model.causal = False  # masked LM means a bidirectional encoder
        if self.objective == "clm" and not self.model.causal:
            raise ValueError("objective 'clm' needs model.causal = true")
        return self


# --------------------------------------------------------------------------- loading

M = TypeVar("M", bound=BaseModel)


def check_task_options(
    spec: TaskSpec, source: str, overrides: list[str] | tuple[str, ...] = ()
) -> None:
    """Validate a spec's ``[options]`` against its task's ``Options`` now, so that a bad key or
    value is one error naming the spec file (or the ``--set options.…`` override) before any
    work starts, not when the task is built."""
    from plugformer.errors import PlugformerError
    from plugformer.plugin_registries import get_task_class

    try:
        task_class = get_task_class(spec.task)
    except PlugformerError as exc:  # an unknown task (or one a broken plugin holds): whose?
        raise ConfigError(f"{source}: {exc}") from None
    options_model = getattr(task_class, "Options", None)
    if options_model is None:
        return
    # ``--set options.K=V`` is ``K=V`` to the options model; its errors get the prefix back
    nested = [o.strip()[len("options.") :] for o in overrides if o.strip().startswith("options.")]
    where = f"{source}: options of task {spec.task!r}"
    try:
        parse_model(options_model, dict(spec.options), where, nested)
    except ConfigError as exc:
        if str(exc).startswith("--set "):
            raise ConfigError(str(exc).replace("--set ", "--set options.", 1)) from None
        raise


def load_config(
    path: str | Path, model: type[M] = PretrainConfig, overrides: list[str] | tuple[str, ...] = ()
) -> M:  # type: ignore[assignment]
    """Load a TOML file into ``model``, applying ``--set`` overrides first."""
    data = apply_overrides(load_toml(path), overrides)
    cfg = parse_model(model, data, str(path), overrides)
    # Relative paths in a config are relative to the config file, as users expect.
    return cfg


# --------------------------------------------------------------------------- task specs

SPEC_PATH_KEYS = ("train", "validation", "test")


def resolve_spec_paths(raw: dict[str, Any], spec_file: str | Path) -> dict[str, Any]:
    """Relative ``data.train`` / ``validation`` / ``test`` paths of a spec file, made relative
    to the file's directory (not the working directory); returns a new dict."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    base = Path(spec_file).parent
    fixed = {
        k: str(base / v)
        if k in SPEC_PATH_KEYS and isinstance(v, str) and not Path(v).is_absolute()
        else v
        for k, v in data.items()
    }
    return {**raw, "data": fixed}


class TaskData(StrictModel):
    """Where a task's examples come from: a dataset recipe, or files (JSONL/CSV/TSV/...)."""

    dataset: str | None = None
    """A dataset recipe name (plugformer data list); its train/validation/test splits are used."""
    train: str | None = None
    """Training file (overrides the recipe's train split); a relative path is relative to the
    spec file."""
    validation: str | None = None
    """Validation file (model selection, early stopping); relative to the spec file."""
    test: str | None = None
    """Test file (plugformer evaluate, suites); relative to the spec file."""
    max_train: int | None = Field(None, ge=1)
    """Use at most this many training examples (a fixed-seed random subset: the same in every run)."""
    max_eval: int | None = Field(None, ge=1)
    """Use at most this many validation and test examples each."""
    max_test: int | None = Field(None, ge=1)
    """Use at most this many test examples (overrides max_eval for the test split: a larger
    test set separates systems, while validation runs many times during training)."""
    holdout: float | None = Field(None, gt=0, lt=1)
    """With no validation data, hold out this share of the training examples (a random subset
    fixed by the spec's ``seed``) for validation. ``finetune NAME --data FILE`` sets 0.1."""

    @model_validator(mode="after")
    def _some_source(self) -> TaskData:
        if not self.dataset and not (self.train or self.test):
            raise ValueError("give data.dataset (a recipe name) or data.train / data.test files")
        return self


class FinetuneConfig(HardwareConfig):
    """How a task is fine-tuned (the core's loop; the task only supplies head, loss, metrics).

    The hardware settings (precision, strategy, accelerator, devices, num_nodes, progress) are
    the trainer's own (:class:`HardwareConfig`), written at the top of ``[finetune]``."""

    max_steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    """Optimiser steps; if unset, epochs decide."""
    max_minutes: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Wall-clock budget of training (validation included): the schedule follows the
    fraction of it spent, or of the steps, whichever is larger, and training stops when it is
    spent. Suites use it to give every backbone the same compute time."""
    epochs: int = Field(3, ge=1, le=MAX_STEPS)
    """Passes over the training set (when max_steps is unset)."""
    batch_size: int = Field(32, ge=1, le=MAX_BATCH)
    eval_batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    lr_backbone: float = Field(3e-4, ge=0)
    """Learning rate of the backbone's parameters."""
    lr_head: float = Field(1e-3, gt=0)
    """Learning rate of the task head."""
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    """Share of the steps spent warming the learning rate up."""
    grad_clip: float = Field(1.0, ge=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)
    """Validate, select and keep an exponential moving average of the weights, updated after
    every optimiser step with this decay (Lightning's ``EMAWeightAveraging``; about
    ``1 / (1 - decay)`` steps of memory). Unset: the weights themselves."""
    checkpoint_every: int | None = Field(None, ge=1, le=MAX_STEPS)
    """Also write ``checkpoints/last.ckpt`` every this many steps, so that a run killed
    without warning (SIGKILL, a lost machine) resumes with ``--resume`` from the last one
    (SIGINT and SIGTERM write it themselves). Unset: only on a signal; a fine-tuning run of
    a few minutes is cheaper to run again than to checkpoint."""
    max_seq_len: int | None = Field(None, ge=2)
    """Read this many tokens, more than the backbone was pretrained on: a rotary backbone's
    positions run on past its pretraining context (``BackboneFamily.extend_context``) and
    fine-tuning trains them; the checkpoint keeps the longer context. Unset: the
    backbone's own. A family that cannot extend (learned positions) says so."""
    freeze_backbone: bool = False
    """Train the head only."""
    freeze_layers: int = Field(0, ge=0)
    """Freeze the embeddings and this many lowest blocks."""
    val_every: int | None = Field(None, ge=1)
    """Validate every N steps (default: once per epoch)."""
    early_stopping_patience: int | None = Field(None, ge=1)
    """Stop after this many validations without improvement of the main metric."""
    group_by_length: bool = True
    """Batch training features of similar length together: shuffled pools of 50 batches are
    sorted by length (of a feature's list-valued fields), cut into batches, and the batches
    shuffled (fairseq's and Hugging Face's ``group_by_length``). Measured on the first-party
    specs: random batches of sentences are ~55 % real tokens, grouped ones ~97 %."""


class InferenceConfig(StrictModel):
    """How a task checkpoint decodes and scores (``[inference]`` in a task spec; saved in the
    checkpoint's manifest and honoured by ``plugformer.load``, which can override it)."""

    precision: Literal["fp32", "bf16", "int8"] = "fp32"
    """Weights for inference only, never for training (:mod:`plugformer.inference.quantize`): ``fp32``;
    ``bf16`` (weights cast to bfloat16, run under bf16 autocast: fast only with native bf16);
    ``int8`` (``torch.ao`` dynamic quantisation of every ``nn.Linear``: qint8 weights,
    per-channel, activations quantised per batch; for CPU decoding)."""


class TaskSpec(StrictModel):
    """A task spec file (tasks/<kind>/<name>.toml)."""

    task: str
    """Task name, resolved through the installed plugins (plugformer plugins)."""
    name: str | None = None
    """A label for reports (default: the file name)."""
    data: TaskData
    options: dict[str, Any] = Field(default_factory=dict)
    """The task's own options, validated by its Options model."""
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    """Inference settings, saved in the task checkpoint (``plugformer.load`` overrides them)."""
    backbone: str | None = None
    """Backbone reference (a checkpoint dir, native:DIR, scratch:DIR, hf:NAME); CLI --backbone wins."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    out_dir: str | None = None
    """Where the task checkpoint goes (default runs/<task>)."""

    @property
    def label(self) -> str:
        return self.name or self.task
