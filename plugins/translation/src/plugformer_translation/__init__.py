"""plugformer-translation: the ``translation`` task plugin for plugformer.

A causal backbone is fine-tuned on ``source <sep> target <eos>`` and decodes with greedy or
beam search over its KV cache; results are scored with sacrebleu (corpus BLEU and chrF).
The plugin module (:mod:`plugformer_translation.plugin`) registers the task lazily, so
listing plugins never imports torch.
"""

__version__ = "0.1.0"
