"""Fine-tuning data: examples of a split, the training features, their resumable
(optionally length-grouped) order, and the training and validation loaders."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from plugformer.config import TaskSpec
from plugformer.errors import DataError
from plugformer.inference.predictor import eval_collate, longest_first

__all__ = ["Features", "ResumableOrder", "hold_out", "load_examples", "loaders"]


def load_examples(task: Any, spec: TaskSpec, split: str) -> list[Any]:
    """Validated examples of one split, from a file or the dataset recipe."""
    path = getattr(spec.data, split)
    limit = spec.data.max_train if split == "train" else spec.data.max_eval
    if split == "test" and spec.data.max_test:
        limit = spec.data.max_test
    if path:
        if not Path(path).exists():  # name the spec and the field that gave the path
            raise DataError(f"spec {spec.label!r}: data.{split}: {path}: no such file")
        examples = task.read_file(path)
    elif spec.data.dataset:
        from pathlib import Path as _P

        if _P(spec.data.dataset).exists():
            raise DataError(
                f"data.dataset {spec.data.dataset!r} is a file: give it as data.{split}"
            )
        from plugformer.data.cache import load_split

        rows = load_split(spec.data.dataset, split)
        examples = [
            task.parse_example(r, f"{spec.data.dataset}/{split}:{i + 1}")
            for i, r in enumerate(rows)
        ]
    else:
        return []
    if limit and limit < len(examples):
        # A fixed-seed sample, not the first N: recipe files may be ordered (by label, by
        # source), and every cell of a suite must see the same subset whatever its seed.
        import numpy as np

        keep = np.sort(np.random.default_rng(0).permutation(len(examples))[:limit])
        examples = [examples[i] for i in keep]
    return examples


def hold_out(examples: list[Any], share: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Split off ``share`` of ``examples`` (a ``seed``-fixed random subset) for validation; says so
    in one line on stderr."""
    import sys

    import numpy as np

    n_val = max(1, round(share * len(examples)))
    if len(examples) - n_val < 1:
        raise DataError(
            f"{len(examples)} training example(s): too few to hold any out for validation"
        )
    order = np.random.default_rng(seed).permutation(len(examples))
    held = set(order[:n_val].tolist())
    print(
        f"plugformer: no validation data: holding out {n_val} of {len(examples)} training "
        f"examples ({share:.0%}, seed {seed}) for validation; give --validation FILE to choose",
        file=sys.stderr,
    )
    train = [ex for i, ex in enumerate(examples) if i not in held]
    return train, [ex for i, ex in enumerate(examples) if i in held]


class Features(torch.utils.data.Dataset):
    """Training items: every feature of every example, flattened."""

    def __init__(self, task: Any, examples: Sequence[Any]):
        self.items = [f for ex in examples for f in task.encode(ex, train=True)]
        if not self.items:
            raise DataError(f"task {task.name!r}: no training features could be encoded")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class ResumableOrder(torch.utils.data.Sampler[int]):
    """Training order as a function of the position: epoch ``e`` is a permutation seeded by
    ``(seed, e)``; iteration starts at item ``start`` and runs to ``total`` (all epochs as one
    stream), so a run resumed at step ``k`` sees exactly the batches it would have seen.

    With ``lengths`` (and ``batch_size``) each epoch's permutation is cut into pools of
    ``POOL_BATCHES`` batches; a pool is sorted by length, cut into batches, and those batches
    are put in a random order (fairseq's and Hugging Face's ``group_by_length``): a batch is
    padded to its longest feature, and similar lengths side by side waste few positions."""

    POOL_BATCHES = 50

    def __init__(
        self,
        n: int,
        seed: int,
        total: int,
        start: int = 0,
        lengths: Sequence[int] | None = None,
        batch_size: int = 1,
    ) -> None:
        self.n, self.seed, self.total, self.start = n, seed, total, start
        self.lengths, self.batch_size = lengths, batch_size

    def __len__(self) -> int:
        # The whole stream, also when resumed: Lightning counts a resumed run's batches on
        # from the checkpoint's position in the (single) epoch, so an epoch of only the
        # remaining batches ended early and started the stream again from ``start``,
        # replaying batches (found 2026-12-01: a run resumed at step 17 diverged after 23).
        return self.total

    def epoch_order(self, epoch: int) -> list[int]:
        """The items of ``epoch`` in training order."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        if self.lengths is None:
            return perm
        bs, pool = self.batch_size, self.batch_size * self.POOL_BATCHES
        out: list[int] = []
        for p in range(0, self.n, pool):
            # Stable sort: equal lengths keep the permutation's (random) order.
            items = sorted(perm[p : p + pool], key=self.lengths.__getitem__)
            batches = [items[b : b + bs] for b in range(0, len(items), bs)]
            for k in torch.randperm(len(batches), generator=g).tolist():
                out += batches[k]
        return out

    def __iter__(self) -> Iterator[int]:
        epoch, order = -1, None
        for i in range(self.start, self.total):
            if i // self.n != epoch:
                epoch = i // self.n
                order = self.epoch_order(epoch)
            yield order[i % self.n]


def loaders(
    task: Any, spec: TaskSpec, train: list[Any], val: list[Any], start_step: int = 0
) -> tuple[DataLoader, DataLoader | None, int, int]:
    """Training and validation loaders, the run's training steps and the steps per epoch."""
    ft = spec.finetune
    features = Features(task, train)
    per_epoch = math.ceil(len(features) / ft.batch_size)
    steps = ft.max_steps or ft.epochs * per_epoch
    lengths = None
    if ft.group_by_length:
        # A feature's size: its list-valued fields (token ids, labels, ...) padded alike.
        lengths = [
            sum(len(v) for v in f.values() if isinstance(v, list | tuple)) for f in features.items
        ]
    order = ResumableOrder(
        len(features),
        spec.seed,
        steps * ft.batch_size,
        start_step * ft.batch_size,
        lengths=lengths,
        batch_size=ft.batch_size,
    )
    # Own generators: a loader drawing its base seed from the global RNG would shift dropout.
    train_dl = DataLoader(
        features,
        batch_size=ft.batch_size,
        sampler=order,
        generator=torch.Generator().manual_seed(spec.seed),
        collate_fn=task.collate,
    )
    if val:
        # Longest first, as Predictor.score batches the test split (the metrics do not
        # depend on the order).
        val = [val[i] for i in longest_first(task, val)]
    val_dl = (
        DataLoader(
            val,
            batch_size=ft.eval_batch_size,
            collate_fn=eval_collate(task),
            generator=torch.Generator().manual_seed(spec.seed),
        )
        if val
        else None
    )
    return train_dl, val_dl, steps, per_epoch
