"""plugformer-generation: the ``generation`` task plugin for plugformer.

Fine-tunes a causal backbone on prompt → completion pairs or on plain text, samples with the
core's KV-cache decoder, and scores held-out text (perplexity, bits per byte) and
completions (ROUGE-L, sacrebleu BLEU/chrF). The plugin module
(:mod:`plugformer_generation.plugin`) registers the task lazily, so listing plugins never
imports torch.
"""

__version__ = "0.1.0"
