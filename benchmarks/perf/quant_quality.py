"""int8 / bf16 inference against fp32 on a trained backbone: held-out logits, top-1 agreement
with fp32, bits/byte (no timing).

    python benchmarks/perf/quant_quality.py CHECKPOINT HELD_OUT.jsonl

Scores the first 64 windows of the backbone's context length over the ``text`` fields of the
first 400 JSONL records, non-overlapping (the first token of each window is not scored);
bits/byte divides the summed NLL by the UTF-8 bytes of the scored tokens' decoded text, so
it reads a little higher than plugformer's strided ``model_bits_per_byte``.
"""

import json
import math
import sys

import torch

import plugformer
from plugformer.inference.quantize import autocast

ck, data = sys.argv[1], sys.argv[2]
ref = plugformer.load(ck)
tok, T = ref.tokenizer, ref.model.config.max_seq_len
texts = [json.loads(line)["text"] for line in open(data)][:400]
ids_all = []
for t in texts:
    ids_all.extend(tok.encode(t))
n = (len(ids_all) // T) * T
ids = torch.tensor(ids_all[:n]).view(-1, T)[:64]
nbytes = len(
    tok.decode(ids[:, 1:].flatten().tolist()).encode()
)  # bytes of the scored tokens (approx.)


def run(model, p):
    with torch.inference_mode(), autocast(p):
        out = [model.lm_logits(model(ids[i : i + 16])).float() for i in range(0, len(ids), 16)]
    return torch.cat(out)


f = run(ref.model, "fp32")
y = ids[:, 1:]


def bpb(L):
    return (
        torch.nn.functional.cross_entropy(
            L[:, :-1].flatten(0, 1), y.flatten(), reduction="sum"
        ).item()
        / math.log(2)
        / nbytes
    )


print(
    f"{ids.numel()} held-out tokens, {nbytes} bytes; fp32 bpb {bpb(f):.4f}, logit std {f.std():.3f}"
)
for p in ("int8", "bf16"):
    m = plugformer.load(ck, precision=p).model
    o = run(m, p)
    print(
        f"{p}: max abs logit diff {(f - o).abs().max():.4f}, mean abs {(f - o).abs().mean():.4f}, top-1 agreement {(f.argmax(-1) == o.argmax(-1)).float().mean():.4f}, bpb {bpb(o):.4f}"
    )
