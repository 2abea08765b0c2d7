"""The core's pretraining objectives, registered like any plugin's."""

from __future__ import annotations

from typing import Any

from plugformer.hookspecs import hookimpl


@hookimpl
def register_objectives(register: Any) -> None:
    from plugformer.training.objectives import CausalLM, Denoising, MaskedLM

    register("clm", CausalLM())
    register("mlm", MaskedLM())
    register("denoise", Denoising())
