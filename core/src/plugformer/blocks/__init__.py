"""Task building blocks: bases for the common task shapes, and the pieces they share.

A new task is usually a subclass of one base with its fields named:

========================== ===============================================================
:class:`ClassificationTask` one label for one or more text fields (single texts, pairs)
:class:`SpanSelectionTask`  an answer extracted from a context (extractive QA)
:class:`ConditionalGenerationTask` prompt → target text (translation, headlines)
:class:`TaggingTask`        one label per word, scored by span F1
========================== ===============================================================

The pointer-generator of :mod:`plugformer.blocks.copy` (``pointer = true`` on a
:class:`ConditionalGenerationTask`) lets generation copy the prompt's tokens.

Shared pieces: :func:`encode_fields` (several fields with longest-first truncation),
:func:`pad_collate`, :class:`LabelSet`, :class:`PooledHead` / :class:`TokenHead`
(:func:`init_from_lm_head` starts a pooled head from a causal LM's label-word logits), standard
metrics (:class:`SpanF1`, :class:`MeanOf`, :func:`classification_metrics`) and baselines
(:func:`majority_baseline`). Importing this package imports torch.
"""

from __future__ import annotations

from plugformer.blocks.classification import (
    ClassificationOptions,
    ClassificationTask,
    classification_example,
    prediction,
)
from plugformer.blocks.encoding import IGNORE, encode_fields, pad_collate, truncate_longest_first
from plugformer.blocks.heads import PooledHead, TokenHead, init_from_lm_head, pool, resolve_pooling
from plugformer.blocks.labels import LabelSet, sorted_labels
from plugformer.blocks.metrics import (
    MeanOf,
    SpanF1,
    bio_spans,
    classification_metrics,
    majority_baseline,
    on_device,
    token_f1,
)
from plugformer.blocks.seq2seq import ConditionalGenerationTask, GenerationOptions
from plugformer.blocks.span import SpanSelectionTask
from plugformer.blocks.tagging import TaggingExample, TaggingOptions, TaggingTask
from plugformer.metric_info import MetricInfo

__all__ = [
    "IGNORE",
    "ClassificationOptions",
    "ClassificationTask",
    "ConditionalGenerationTask",
    "GenerationOptions",
    "LabelSet",
    "MeanOf",
    "MetricInfo",
    "PooledHead",
    "SpanF1",
    "SpanSelectionTask",
    "TaggingExample",
    "TaggingOptions",
    "TaggingTask",
    "TokenHead",
    "bio_spans",
    "classification_example",
    "classification_metrics",
    "encode_fields",
    "init_from_lm_head",
    "majority_baseline",
    "on_device",
    "pad_collate",
    "pool",
    "prediction",
    "resolve_pooling",
    "sorted_labels",
    "token_f1",
    "truncate_longest_first",
]
