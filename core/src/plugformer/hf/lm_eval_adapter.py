"""lm-evaluation-harness on plugformer backbones: the ``plugformer`` model of ``lm_eval``.

:class:`PlugformerLM` implements ``loglikelihood``, ``loglikelihood_rolling`` and
``generate_until`` on any causal backbone reference: a native checkpoint directory, or
``hf:DIR`` for a ``transformers`` decoder. Importing this module registers it as
``plugformer`` in lm_eval's model registry.

lm_eval (0.4) discovers models only among the modules it imports itself, and has no
entry-point group for third-party models (``--include_path`` adds *tasks*). So the command
line is this module, a thin wrapper that imports the registration and then runs lm_eval's
own CLI with the same arguments::

    python -m plugformer.hf.lm_eval_adapter --model plugformer \\
        --model_args checkpoint=runs/pretrain/final,batch_size=8 \\
        --tasks my_task --include_path my_tasks/

(``plugformer-lm-eval`` is the same as a console script.) From Python,
``import plugformer.hf.lm_eval_adapter`` and then ``lm_eval.simple_evaluate(model="plugformer",
model_args="checkpoint=...")``, or pass a ``PlugformerLM`` instance as ``model``.

Scoring follows lm_eval's HF model: a context is conditioned on the backbone's eos token
when empty (plugformer separates pretraining documents with eos), inputs longer than the
context window keep their last ``max_length`` tokens, and rolling log-likelihoods use
disjoint windows of ``max_length`` tokens.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.nn.functional as F

from plugformer.hf import require

require("lm_eval")

from lm_eval import utils as lm_utils  # noqa: E402
from lm_eval.api.model import TemplateLM  # noqa: E402
from lm_eval.api.registry import register_model  # noqa: E402

__all__ = ["PlugformerLM", "main"]


@register_model("plugformer")
class PlugformerLM(TemplateLM):
    """An lm_eval model backed by a plugformer backbone.

    :param checkpoint: a backbone reference: a checkpoint directory, ``native:DIR`` or
        ``hf:DIR`` (any causal backbone with an LM head).
    :param batch_size: sequences per forward pass (``"auto"`` means 8).
    :param device: ``cpu``, ``cuda``, ``cuda:1`` ... (``cuda`` without a GPU means ``cpu``)
    :param max_length: context window (default: the backbone's ``max_seq_len``).
    :param max_gen_toks: default generation budget of ``generate_until``.
    """

    def __init__(
        self,
        checkpoint: str,
        batch_size: int | str = 8,
        device: str = "cpu",
        max_length: int | None = None,
        max_gen_toks: int = 256,
        **_: Any,
    ) -> None:
        super().__init__()
        from plugformer.errors import PlugformerError
        from plugformer.models.backbones import resolve_backbone

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"  # lm_eval's CLI asks for cuda by default; fall back as its HF model does
        loaded = resolve_backbone(str(checkpoint))
        if not getattr(loaded.model, "causal", False):
            raise PlugformerError(
                f"{checkpoint}: lm_eval scores text left to right and needs a causal backbone"
            )
        self.backbone = loaded.model.to(device).eval()
        self.tokenizer = loaded.tokenizer
        self._device = torch.device(device)
        self.batch_size = 8 if str(batch_size).startswith("auto") else int(batch_size)
        self.max_length = int(max_length or self.backbone.max_seq_len)
        self.max_gen_toks = int(max_gen_toks)
        self.checkpoint = str(checkpoint)

    # ------------------------------------------------------------------ tokens
    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_id)

    @property
    def tokenizer_name(self) -> str:
        return f"plugformer-{self.tokenizer.hash[:12]}"

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **_: Any
    ) -> list[int]:
        return self.tokenizer.encode(string)

    def tok_decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens)

    # ------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), continuation is the greedy one) per pair, batched.

        Longest inputs first, so a batch wastes little padding; results in input order.
        """
        rows = []
        for i, (ctx, cont) in enumerate(pairs):
            whole = (ctx + cont)[-(self.max_length + 1) :]
            n = min(len(cont), len(whole) - 1)
            rows.append(
                (i, whole[:-1], whole[len(whole) - n :])
            )  # input (T,), targets of its last n
        rows.sort(key=lambda r: -len(r[1]))
        out: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            T = len(batch[0][1])
            ids = torch.full((len(batch), T), self.tokenizer.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), T), dtype=torch.long)
            for j, (_, inp, _) in enumerate(batch):
                ids[j, : len(inp)] = torch.tensor(inp)
                mask[j, : len(inp)] = 1
            padded = bool((mask == 0).any())
            ids, mask = ids.to(self._device), mask.to(self._device)
            hidden = self.backbone(ids, mask if padded else None)  # (B, T, C)
            logprobs = F.log_softmax(self.backbone.lm_logits(hidden).float(), dim=-1)  # (B, T, V)
            for j, (i, inp, tgt) in enumerate(batch):
                target = torch.tensor(tgt, dtype=torch.long, device=self._device)  # (n,)
                lp = logprobs[j, len(inp) - len(tgt) : len(inp)]  # (n, V)
                score = lp.gather(1, target[:, None]).sum().item()
                out[i] = (float(score), bool((lp.argmax(-1) == target).all()))
        return out

    def _loglikelihood_tokens(
        self,
        requests: list[tuple[tuple[str, str], list[int], list[int]]],
        disable_tqdm: bool = False,
        **_: Any,
    ) -> list[tuple[float, bool]]:
        results = self._score([(ctx, cont) for _, ctx, cont in requests])
        for (key, _, _), res in zip(requests, results, strict=True):
            self.cache_hook.add_partial("loglikelihood", key, res)
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        out = []
        for req in requests:
            (text,) = req.args
            windows = [
                lm_utils.make_disjoint_window(w)
                for w in lm_utils.get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            total = sum(score for score, _ in self._score(windows))
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            out.append(total)
        return out

    # ------------------------------------------------------------------ generation
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        from plugformer.inference.generation import SamplingConfig, generate

        out = []
        for req in requests:
            context, gen_kwargs = req.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            budget = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
            sample = bool(kwargs.pop("do_sample", False))
            temperature = (
                float(kwargs.pop("temperature", 1.0 if sample else 0.0)) if sample else 0.0
            )
            cfg = SamplingConfig(
                max_new_tokens=budget,
                temperature=temperature,
                top_k=kwargs.pop("top_k", None),
                top_p=kwargs.pop("top_p", None),
                seed=kwargs.pop("seed", 0),
            )
            keep = max(1, self.max_length - min(budget, self.max_length - 1))
            prompt = ([self.prefix_token_id, *self.tok_encode(context)])[-keep:]

            def stop(ids: list[int], _until: list[str] = until) -> bool:
                return bool(_until) and any(s in self.tok_decode(ids) for s in _until)

            ids = generate(
                self.backbone,
                [prompt],
                cfg,
                eos_id=self.eot_token_id,
                pad_id=self.tokenizer.pad_id,
                stop_check=stop,
            )[0]
            text = self.tok_decode(ids)
            for s in until:
                text = text.split(s)[0]
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out


def main(argv: list[str] | None = None) -> None:
    """``lm_eval``'s command line with the ``plugformer`` model registered."""
    import lm_eval.models  # noqa: F401 - registers lm_eval's own models beside ours
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
