"""Interoperability with the Hugging Face ecosystem (the ``hf`` extra).

* :mod:`plugformer.hf.backbone` -- any local ``transformers`` model directory (an encoder
  such as BERT/MiniLM or a decoder such as GPT-2/Llama) as a plugformer backbone, with its
  own tokenizer behind the plugformer tokenizer interface (``hf:DIR``, ``hf:NAME``);
* :mod:`plugformer.hf.recipes` -- model recipes: real pretrained models obtained offline
  from package registries (``hf:minilm-l6``), pinned by sha256 and cached under
  ``$PLUGFORMER_HOME/models``;
* :mod:`plugformer.hf.export` -- a native checkpoint to a ``transformers`` directory
  (``LlamaForCausalLM`` or ``GPT2LMHeadModel``) and back (``plugformer export CKPT --to hf DIR``);
* :mod:`plugformer.hf.lm_eval_adapter` -- an lm-evaluation-harness model (``--model plugformer``).

Importing this package imports neither torch nor ``transformers``; each submodule imports
``transformers`` when it is used and says how to install it when it is missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

from plugformer.errors import PlugformerError

__all__ = ["quiet", "require"]

_EXTRAS = {"transformers": "hf", "lm_eval": "lm-eval"}


def require(module: str) -> ModuleType:
    """Import an optional dependency, or raise one line naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise
        extra = _EXTRAS.get(module.split(".")[0], "hf")
        raise PlugformerError(
            f"this needs the optional dependency {module.split('.')[0]!r}: "
            f"pip install 'plugformer[{extra}]'"
        ) from None


@contextlib.contextmanager
def quiet(transformers: ModuleType) -> Iterator[None]:
    """Silence ``transformers``' load reports (e.g. a skipped pooler) and progress bars."""
    log = transformers.utils.logging
    level = log.get_verbosity()
    log.set_verbosity_error()
    log.disable_progress_bar()
    try:
        yield
    finally:
        log.set_verbosity(level)
        log.enable_progress_bar()
