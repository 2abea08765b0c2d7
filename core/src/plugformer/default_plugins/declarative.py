"""The classes behind the core's declarative tasks (see ``default_plugins/tasks.py``)."""

from __future__ import annotations

import plugformer
from plugformer.blocks import (
    ClassificationTask,
    ConditionalGenerationTask,
    SpanSelectionTask,
    TaggingTask,
)

__all__ = ["Classification", "ConditionalGeneration", "Span", "Tagging"]


class Classification(ClassificationTask):
    """Classification over ``options.text_fields`` (default ``["text"]``)."""

    name = "classification"
    version = plugformer.__version__


class Tagging(TaggingTask):
    name = "tagging"
    version = plugformer.__version__


class Span(SpanSelectionTask):
    name = "span"
    version = plugformer.__version__


class ConditionalGeneration(ConditionalGenerationTask):
    """Prompt → target over ``options.source_field`` / ``target_field`` (``source``/``target``)."""

    name = "conditional-generation"
    output_key = "output"
    version = plugformer.__version__
