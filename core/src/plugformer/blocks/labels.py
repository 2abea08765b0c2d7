"""``LabelSet``: named labels, learned from training data or fixed by options, stored in checkpoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from plugformer.errors import DataError, PlugformerError

__all__ = ["LabelSet", "sorted_labels"]


def sorted_labels(names: Iterable[str]) -> list[str]:
    """Sorted label names: numerically when every name is an integer, else alphabetically."""
    names = list(names)
    if names and all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


class LabelSet:
    """An ordered list of label names and their training counts; name ↔ index."""

    def __init__(
        self,
        task: str,
        fixed: Sequence[str] | None = None,
        minimum: int = 2,
        field: str = "label",
    ) -> None:
        self.task, self.fixed, self.minimum = task, list(fixed or []), minimum
        self.field = field
        """The example field the labels are read from (named in the error for a missing one)."""
        self.names: list[str] = list(self.fixed)
        self.counts: list[int] = []

    def learn(self, labels: Iterable[str | None], wheres: Sequence[str] | None = None) -> None:
        """Learn names (sorted) and counts from training labels; fixed names must cover them.
        ``wheres`` (file:line of each label's example) lets an error name the first culprit."""
        labels = list(labels)
        counts = Counter(labels)

        def at(bad: Callable[[str | None], bool]) -> str:
            i = next(i for i, label in enumerate(labels) if bad(label))
            return f"{wheres[i]}: " if wheres and i < len(wheres) and wheres[i] else ""

        if None in counts:
            raise DataError(
                f"{at(lambda x: x is None)}no label (task {self.task!r}: {counts[None]} "
                f"training example(s) have no label in the field {self.field!r}; if the file "
                f"names it otherwise, map the column: --set options.columns.{self.field}=COLUMN)"
            )
        if self.fixed:
            unknown = sorted(set(counts) - set(self.fixed))
            if unknown:
                raise DataError(
                    f"{at(lambda x: x in unknown)}training labels {unknown} are not in "
                    f"options.labels {self.fixed}"
                )
        else:
            self.names = sorted_labels(counts)
        if len(self.names) < self.minimum:
            raise DataError(
                f"task {self.task!r} needs at least {self.minimum} labels; "
                f"the training data has {self.names}"
            )
        self.counts = [counts.get(n, 0) for n in self.names]

    def require(self) -> list[str]:
        if not self.names:
            raise PlugformerError(
                f"task {self.task!r} has no labels yet: call prepare(train) or load_state_dict first"
            )
        return self.names

    def index(
        self, label: str | None, example_id: str | None = None, *, where: str | None = None
    ) -> int:
        """The index of ``label``; an error names ``where`` (the example's ``file:line``, from
        :func:`plugformer.tasks.example_location`) or else the example's id."""
        names = self.require()
        at = where or f"example {example_id or '(no id)'}"
        if label is None:
            raise DataError(f"{at}: no label to train on or score against")
        try:
            return names.index(label)
        except ValueError:
            raise DataError(
                f"{at}: label {label!r} is not one of {names} "
                "(set options.labels to list every label)"
            ) from None

    def __len__(self) -> int:
        return len(self.names)

    def inverse_frequency(self) -> list[float]:
        """Class weights ``n / (K * n_label)`` (1.0 for an unseen label)."""
        total, k = sum(self.counts), len(self.counts)
        return [total / (k * n) if n else 1.0 for n in self.counts]

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.names, "label_counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.names = list(state["labels"])
        self.counts = list(state.get("label_counts", []))
