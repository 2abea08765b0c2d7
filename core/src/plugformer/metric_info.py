"""``MetricInfo``: what one metric means, typed — the one convention for ``Task.metric_info``.

Every metric a task reports is described by a :class:`MetricInfo`: a one-line definition,
its range (``None`` for an unbounded end), its direction and, where a tool defines it, a
signature (sacreBLEU's). Results store ``metric_info`` as ``{metric: MetricInfo.as_json()}``;
reports read the range and direction from there instead of guessing them from the text.
Task-wide facts that are not metrics (the label set, …) go under the ``"_task"`` key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["MetricInfo", "normalise_metric_info"]


class MetricInfo(BaseModel):
    """One metric's definition, range, direction and (optional) signature."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    definition: str
    """One line: what is counted, over what (e.g. "fraction of examples predicted exactly")."""
    range: tuple[float | None, float | None] = (0.0, 1.0)
    """Lowest and highest possible values; ``None`` for an unbounded end."""
    higher_is_better: bool = True
    """Direction: whether a larger value is a better system."""
    signature: str | None = None
    """A tool's reproducibility signature (sacreBLEU), if any."""

    def as_json(self) -> dict[str, Any]:
        return self.model_dump()

    @property
    def scale(self) -> str:
        """``0 to 1``; ``0 to 100, sacreBLEU`` for a sacreBLEU metric; ``≥ 0`` if unbounded."""
        low, high = self.range
        if high is None:
            return f"≥ {low:g}" if low is not None else "unbounded"
        text = f"{low:g} to {high:g}" if low is not None else f"≤ {high:g}"
        return text + (", sacreBLEU" if self.signature and "nrefs:" in self.signature else "")


def normalise_metric_info(info: dict[str, Any] | None) -> dict[str, Any]:
    """``{metric: MetricInfo}`` entries as JSON dicts; other entries (``_task``) unchanged."""
    out: dict[str, Any] = {}
    for key, value in (info or {}).items():
        out[key] = value.as_json() if isinstance(value, MetricInfo) else value
    return out
