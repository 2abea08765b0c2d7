"""Weight averaging for fine-tuning: an exponential moving average of the weights
(``finetune.ema_decay``), on Lightning's ``EMAWeightAveraging`` callback.

Lightning swaps the averaged weights in for each validation and back at the end of the
validation epoch, before ``on_validation_end``, where model selection
(``plugformer.training.finetune._KeepBest``) copies the weights it keeps. :class:`EMAWeights`
swaps back at ``on_validation_end`` instead, so a callback listed before it keeps the weights
that were validated.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import EMAWeightAveraging

__all__ = ["EMAWeights"]


class EMAWeights(EMAWeightAveraging):
    """EMA of every parameter and buffer, updated after each optimiser step; the averaged
    weights are the ones validated, selected and saved (``on_train_end`` copies them in)."""

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Keep the averaged weights in place until :meth:`on_validation_end`."""

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._average_model is not None:
            self._swap_models(pl_module)
