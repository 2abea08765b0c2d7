"""The core's decoding strategies, registered like any plugin's: greedy, sample, beam."""

from __future__ import annotations

from typing import Any

from plugformer.hookspecs import hookimpl


def _greedy(**_: Any) -> Any:
    from plugformer.inference.decoding import Greedy

    return Greedy()


def _sample(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, **_: Any
) -> Any:
    from plugformer.inference.decoding import Sampling

    return Sampling(temperature, top_k, top_p)


def _beam(beam_size: int = 4, length_penalty: float = 0.6, **_: Any) -> Any:
    from plugformer.inference.decoding import Beam

    return Beam(beam_size, length_penalty)


@hookimpl
def register_decoding_strategies(register: Any) -> None:
    register("greedy", _greedy)
    register("sample", _sample)
    register("beam", _beam)
