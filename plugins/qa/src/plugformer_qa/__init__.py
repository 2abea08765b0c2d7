"""plugformer-qa: extractive question answering (SQuAD v1.1 style) as a plugformer task plugin.

``plugin`` holds the hook implementations (found through the ``plugformer`` entry point and
kept free of torch imports), ``squad`` reads SQuAD v1.1 JSON files, ``task`` the
:class:`QATask` (its example and options models in ``schema``, context windows in
``windows``, its head in ``head``, cloze candidates in ``candidates``, decoding in
``decoding``, scoring in ``metrics``), ``baselines`` the entity-ranker reference system,
``datasets`` the real dataset recipes.
"""

__version__ = "0.1.0"
