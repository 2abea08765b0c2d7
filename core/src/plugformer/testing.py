"""The conformance kit for task plugins (langchain's "standard tests", for tasks).

A plugin's tests subclass :class:`TaskConformance`, name their task and give a few examples;
they inherit checks of everything the core relies on::

    from plugformer.testing import TaskConformance
    from my_plugin.task import MyTask

    class TestMyTask(TaskConformance):
        task_class = MyTask
        train_examples = [{"text": "great film", "label": "pos"}, ...]  # learnable, 20+

A fixture file works too: ``train_examples = read_rows(HERE / "data" / "train.jsonl")``.

The checks: the example schema accepts the examples and rejects an empty row with a clear
error; encode/collate produce padded LongTensors of matching shapes; the head trains on a
micro backbone (loss falls within ``train_steps`` AdamW steps); predictions decode, one per
example, JSON-serialisable; metrics compute (including the main metric); baselines score;
a task checkpoint round-trips (same predictions after save → load; the task must be
registered — installed, or ``register_in_process = True`` — or the check fails); a
causal-only task refuses a bidirectional backbone, any other trains and predicts on one;
a short-context backbone (``short_context`` tokens) with inputs made long never sees a
sequence past its context; ``update_metrics`` builds its tensors on the metrics' device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

__all__ = ["TaskConformance", "micro_backbone", "read_rows", "tokenizer_for"]


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list | tuple):
        return [s for v in obj for s in _strings(v)]
    return []


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The raw rows of a JSONL/CSV/TSV fixture file, read as the core reads data files: for a
    test's ``train_examples`` / ``eval_examples`` (``read_rows(HERE / "data/train.jsonl")``)."""
    from plugformer.data.readers import read_records

    return [record for _, record in read_records(path)]


def tokenizer_for(examples: list[dict[str, Any]], vocab_size: int = 400) -> Any:
    """A small BPE trained on every string in ``examples`` (deterministic)."""
    from plugformer.tokenizer import train_tokenizer

    texts = [s for ex in examples for s in _strings(ex)] * 3
    return train_tokenizer(texts, vocab_size=vocab_size, min_frequency=1)


def micro_backbone(tokenizer: Any, causal: bool = True, seed: int = 0, **overrides: Any) -> Any:
    """A LoadedBackbone with a 1–2 layer GPT of a few thousand parameters."""
    import torch

    from plugformer.config import ModelConfig
    from plugformer.models.families import LoadedBackbone
    from plugformer.models.gpt import GPT

    torch.manual_seed(seed)
    fields = {"n_layers": 2, "d_model": 32, "n_heads": 2, "max_seq_len": 128, **overrides}
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, causal=causal, **fields)
    model = GPT(cfg)
    manifest = {"weights_sha256": f"micro-{seed}", "architecture": "plugformer-gpt"}
    return LoadedBackbone(model, tokenizer, manifest, None)


class TaskConformance:
    """Subclass, set ``task_class`` and ``train_examples``; optionally the rest."""

    task_class: ClassVar[type]
    train_examples: ClassVar[list[dict[str, Any]]]
    eval_examples: ClassVar[list[dict[str, Any]] | None] = None
    """Defaults to the first few training examples."""
    options: ClassVar[dict[str, Any]] = {}
    train_steps: ClassVar[int] = 40
    lr: ClassVar[float] = 3e-3
    batch_size: ClassVar[int] = 8
    backbone_overrides: ClassVar[dict[str, Any]] = {}
    register_in_process: ClassVar[bool] = False
    """Register ``task_class`` as an in-process plugin (a task not installed through an entry point)."""
    short_context: ClassVar[int] = 24
    """Context length of the short backbone of the length-budget check."""
    keep_short: ClassVar[tuple[str, ...]] = ("id", "label", "answer")
    """Fields never lengthened by the length-budget check (labels, answers that must match)."""

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture(scope="class")
    @classmethod
    def tokenizer(cls) -> Any:
        return tokenizer_for(cls.train_examples + list(cls.eval_examples or []))

    @pytest.fixture()
    def task(self, tokenizer: Any) -> Any:
        task = self.task_class(dict(self.options), tokenizer)
        task.prepare(self._parse(task, self.train_examples))
        return task

    @pytest.fixture()
    def backbone(self, tokenizer: Any) -> Any:
        return micro_backbone(tokenizer, causal=True, **self.backbone_overrides)

    @pytest.fixture(autouse=True)
    def _in_process_plugin(self) -> Any:
        if not self.register_in_process:
            yield
            return
        import types

        from plugformer import hookimpl, plugins

        cls = self.task_class
        module = types.ModuleType(f"conformance_{cls.name}")
        module.register_tasks = hookimpl(lambda register: register(cls))  # type: ignore[attr-defined]
        plugins.register_plugin(module, f"conformance-{cls.name}")
        yield
        plugins.unregister_plugin(f"conformance-{cls.name}")

    def _long(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows whose texts (string fields with a space, outside ``keep_short``) are ~12× longer;
        each text keeps its start, so character offsets into it stay valid."""
        out = []
        for row in rows:
            new = dict(row)
            for k, v in row.items():
                if isinstance(v, str) and " " in v and k not in self.keep_short:
                    new[k] = " ".join([v] * 12)
            out.append(new)
        return out

    def _parse(self, task: Any, rows: list[dict[str, Any]]) -> list[Any]:
        return [task.parse_example(dict(r), f"example {i}") for i, r in enumerate(rows)]

    def _eval(self, task: Any) -> list[Any]:
        return self._parse(task, list(self.eval_examples or self.train_examples[:6]))

    def _eval_batch(self, task: Any, examples: list[Any]) -> dict[str, Any]:
        from plugformer.training.finetune import eval_collate

        return eval_collate(task)(examples)

    # ------------------------------------------------------------------ checks
    def test_declares_contract(self) -> None:
        cls = self.task_class
        assert isinstance(cls.name, str) and cls.name, "Task.name must be a non-empty string"
        assert cls.main_metric, "Task.main_metric must name one of metrics()"
        assert hasattr(cls, "Example") and hasattr(cls, "Options")

    def test_example_schema(self, task: Any) -> None:
        from plugformer.errors import DataError

        assert len(self._parse(task, self.train_examples)) == len(self.train_examples)
        with pytest.raises(DataError, match="row 7"):
            task.parse_example({"unexpected": object()}, "row 7")

    def test_encode_collate_shapes(self, task: Any, backbone: Any) -> None:
        import torch

        task.build_head(backbone.model)  # lets the task learn the backbone's context length
        examples = self._parse(task, self.train_examples[: self.batch_size])
        feats = [f for ex in examples for f in task.encode(ex, train=True)]
        assert feats, "encode(train=True) gave no features"
        batch = task.collate(feats)
        ids = batch["input_ids"]
        assert isinstance(ids, torch.Tensor) and ids.dtype == torch.long and ids.dim() == 2
        assert ids.size(0) == len(feats) and ids.size(1) <= backbone.model.max_seq_len
        if batch.get("attention_mask") is not None:
            assert batch["attention_mask"].shape == ids.shape

    def test_head_trains(self, task: Any, backbone: Any) -> None:
        import torch

        head = task.build_head(backbone.model)
        feats = [
            f for ex in self._parse(task, self.train_examples) for f in task.encode(ex, train=True)
        ]
        params = [p for p in [*backbone.model.parameters(), *head.parameters()] if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr)
        g = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(self.train_steps):
            idx = torch.randint(
                len(feats), (min(self.batch_size, len(feats)),), generator=g
            ).tolist()
            batch = task.collate([feats[i] for i in idx])
            loss = task.loss(task.forward(backbone.model, head, batch), batch)
            assert torch.isfinite(loss), "loss is not finite"
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        k = max(3, self.train_steps // 5)
        first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
        assert last < 0.9 * first, f"loss did not fall: first {first:.3f} → last {last:.3f}"

    def test_predictions_decode_and_metrics_compute(self, task: Any, backbone: Any) -> None:
        import torch

        head = task.build_head(backbone.model)
        examples = self._eval(task)
        with torch.inference_mode():
            preds = task.predict(
                backbone.model.eval(), head.eval(), self._eval_batch(task, examples)
            )
        assert len(preds) == len(examples), "predict must return one prediction per example"
        json.dumps(preds)  # JSON-serialisable
        metrics = task.metrics()
        task.update_metrics(metrics, preds, examples)
        values = task.compute_metrics(metrics)
        assert task.main_metric in values, (
            f"main_metric {task.main_metric!r} not in {sorted(values)}"
        )
        assert all(isinstance(v, float) for v in values.values())

    def test_baselines_score(self, task: Any) -> None:
        from plugformer.tasks import run_baseline

        train, test = self._parse(task, self.train_examples), self._eval(task)
        for name, baseline in task.baselines().items():
            # Validation examples stand in from train: this checks shapes, not quality.
            preds, info = run_baseline(baseline, train, test, train[: len(test)])
            assert len(preds) == len(test), f"baseline {name!r} must predict every example"
            assert isinstance(info["definition"], str | None), f"{name!r}: definition is text"
            json.dumps(info["chosen"])  # it goes into the suite's JSON records
            metrics = task.metrics()
            task.update_metrics(metrics, preds, test)
            assert task.main_metric in task.compute_metrics(metrics)

    def test_fuse_pools_a_baseline_with_itself_and_at_the_ends(self, task: Any) -> None:
        """``Task.fuse`` (optional): pooling a system with itself, or at weight 1 / 0, scores
        as that system alone; a task that does not opt in refuses with a clear error."""
        from plugformer.errors import PlugformerError
        from plugformer.tasks import Task, run_baseline, score_predictions

        train, test = self._parse(task, self.train_examples), self._eval(task)
        if type(task).fuse is Task.fuse:
            with pytest.raises(PlugformerError, match=r"Task\.fuse"):
                task.fuse(None, None, 0.5)
            return
        systems = [
            run_baseline(b, train, test, train[: len(test)])[0] for b in task.baselines().values()
        ]
        if not systems:
            pytest.skip("the task has no baseline whose predictions could be pooled")
        a, b = systems[0], systems[-1]
        main = task.main_metric
        alone = {id(s): score_predictions(task, s, test)[main] for s in (a, b)}
        same = [task.fuse(x, x, 0.3) for x in a]
        json.dumps(same)  # pooled predictions are logged like any other
        assert score_predictions(task, same, test)[main] == alone[id(a)]
        at_one = [task.fuse(x, y, 1.0) for x, y in zip(a, b, strict=True)]
        at_zero = [task.fuse(x, y, 0.0) for x, y in zip(a, b, strict=True)]
        assert score_predictions(task, at_one, test)[main] == alone[id(a)]
        assert score_predictions(task, at_zero, test)[main] == alone[id(b)]

    def test_example_statistics_reproduce_the_main_metric(self, task: Any, backbone: Any) -> None:
        """Reports resample test examples through ``example_statistics``: the statistics of
        every example together must give the main metric the task reports (``None`` opts out)."""
        import torch

        from plugformer.resampling import ExampleStatistics, score
        from plugformer.tasks import run_baseline

        examples = self._eval(task)
        head = task.build_head(backbone.model)
        with torch.inference_mode():
            model_preds = task.predict(
                backbone.model.eval(), head.eval(), self._eval_batch(task, examples)
            )
        train = self._parse(task, self.train_examples)
        runs = [("the untrained model", model_preds)] + [
            (f"baseline {name!r}", run_baseline(b, train, examples, train[: len(examples)])[0])
            for name, b in task.baselines().items()
        ]
        for who, preds in runs:
            stats = task.example_statistics(preds, examples)
            if stats is None:
                continue
            assert isinstance(stats, ExampleStatistics), "example_statistics: ExampleStatistics"
            assert len(stats.rows) == len(examples), "one row of statistics per example"
            totals = [sum(col) for col in zip(*stats.rows, strict=True)]
            metrics = task.metrics()
            task.update_metrics(metrics, preds, examples)
            reported = task.compute_metrics(metrics)[task.main_metric]
            mine = score(stats.kind, totals, len(examples), stats.scale)
            assert abs(mine - reported) <= 1e-4 * max(1.0, abs(reported)), (
                f"{who}: statistics give {task.main_metric} {mine}, the task reports {reported}"
            )

    def test_checkpoint_round_trip(self, task: Any, backbone: Any, tmp_path: Path) -> None:
        from plugformer.checkpoint import load_task, save_task
        from plugformer.config import TaskSpec
        from plugformer.plugin_registries import tasks

        head = task.build_head(backbone.model)
        spec = TaskSpec(task=task.name, data={"train": "unused.jsonl"})
        save_task(tmp_path / "ckpt", backbone, head, task, spec, {"backbone": "micro"})
        if task.name not in tasks():
            pytest.fail(
                f"task {task.name!r} is not registered, so its checkpoint cannot be reloaded by "
                "name: install the plugin (pip install -e .) or set register_in_process = True"
            )
        task2, model2, head2, _ = load_task(tmp_path / "ckpt")
        import torch

        examples = self._eval(task)
        with torch.inference_mode():
            a = task.predict(backbone.model.eval(), head.eval(), self._eval_batch(task, examples))
            b = task2.predict(model2.eval(), head2.eval(), self._eval_batch(task2, examples))
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    def test_refuses_bidirectional_backbone_if_causal(self, task: Any, tokenizer: Any) -> None:
        from plugformer.errors import PlugformerError

        encoder = micro_backbone(tokenizer, causal=False)
        if not task.requires_causal:
            task.check_backbone(encoder.model)  # must accept it
            return
        with pytest.raises(PlugformerError, match="causal"):
            task.check_backbone(encoder.model)

    def test_pretrain_documents(self, task: Any, tokenizer: Any) -> None:
        """Task-aware pretraining: documents are non-empty text, one or more per labelled
        example, and the separator they write is the tokenizer's ``<sep>`` token; a task that
        does not opt in refuses with a clear error."""
        from plugformer.errors import PlugformerError
        from plugformer.tasks import SEP, Task

        train = self._parse(task, self.train_examples)
        if type(task).pretrain_documents is Task.pretrain_documents:
            with pytest.raises(PlugformerError, match="pretraining documents"):
                task.pretrain_documents(train)
            return
        docs = list(task.pretrain_documents(train))
        assert docs, "pretrain_documents made no documents from the training examples"
        assert all(isinstance(d, str) and d.strip() for d in docs)
        for doc in docs:
            if SEP in doc:
                ids = tokenizer.encode(doc)
                assert ids.count(tokenizer.sep_id) == doc.count(SEP), (
                    f"{SEP!r} in a document must tokenise to the tokenizer's sep id: {doc[:80]!r}"
                )

    def test_length_budget_on_short_context_with_long_inputs(self, tokenizer: Any) -> None:
        import torch

        short = micro_backbone(tokenizer, causal=True, max_seq_len=self.short_context)
        task = self.task_class(dict(self.options), tokenizer)
        task.check_backbone(short.model)
        assert task.max_len is not None and task.max_len <= self.short_context, (
            "check_backbone must set task.max_len (the length budget) from the backbone"
        )
        task.prepare(self._parse(task, self.train_examples))
        head = task.build_head(short.model)
        examples = self._parse(task, self._long(list(self.train_examples[: self.batch_size])))
        feats = [f for ex in examples for f in task.encode(ex, train=True)]
        longest = max(len(f["input_ids"]) for f in feats)
        assert longest <= self.short_context, (
            f"encode gave {longest} tokens; the backbone's context is {self.short_context}"
        )
        batch = task.collate(feats)
        assert torch.isfinite(task.loss(task.forward(short.model, head, batch), batch))
        evals = self._parse(task, self._long(list(self.eval_examples or self.train_examples[:6])))
        with torch.inference_mode():
            preds = task.predict(short.model.eval(), head.eval(), self._eval_batch(task, evals))
        assert len(preds) == len(evals)

    def test_bidirectional_backbone_trains_and_predicts(self, tokenizer: Any) -> None:
        import torch

        task = self.task_class(dict(self.options), tokenizer)
        if task.requires_causal:  # the instance's: options may make a task causal-only
            pytest.skip("a causal-only task (refusal is checked separately)")
        encoder = micro_backbone(tokenizer, causal=False, **self.backbone_overrides)
        task.check_backbone(encoder.model)
        task.prepare(self._parse(task, self.train_examples))
        head = task.build_head(encoder.model)
        feats = [
            f
            for ex in self._parse(task, self.train_examples[: self.batch_size])
            for f in task.encode(ex, train=True)
        ]
        batch = task.collate(feats)
        loss = task.loss(task.forward(encoder.model, head, batch), batch)
        assert torch.isfinite(loss)
        loss.backward()
        examples = self._eval(task)
        with torch.inference_mode():
            preds = task.predict(
                encoder.model.eval(), head.eval(), self._eval_batch(task, examples)
            )
        assert len(preds) == len(examples)

    def test_metrics_updated_on_their_device(self, task: Any, backbone: Any) -> None:
        import torch

        head = task.build_head(backbone.model)
        examples = self._eval(task)
        with torch.inference_mode():
            preds = task.predict(
                backbone.model.eval(), head.eval(), self._eval_batch(task, examples)
            )
        probes = {k: _DeviceProbe(m) for k, m in task.metrics().items()}
        task.update_metrics(probes, preds, examples)
        wrong = {k: sorted(p.wrong) for k, p in probes.items() if p.wrong}
        assert not wrong, (
            f"update_metrics built tensors on {wrong} for metrics on device 'meta': create them "
            "with device=metric.device (plugformer.blocks.on_device)"
        )


class _DeviceProbe:
    """Stands in for a metric that lives on the ``meta`` device; records tensors sent elsewhere."""

    def __init__(self, metric: Any) -> None:
        import torch

        self._metric = metric
        self.device = torch.device("meta")
        self.wrong: set[str] = set()

    def update(self, *args: Any, **kwargs: Any) -> None:
        import torch

        for value in [*args, *kwargs.values()]:
            if isinstance(value, torch.Tensor) and value.device.type != "meta":
                self.wrong.add(str(value.device))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)
