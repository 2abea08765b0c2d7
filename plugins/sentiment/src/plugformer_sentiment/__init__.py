"""plugformer-sentiment: sentiment classification as a plugformer task plugin.

``plugin`` holds the hook implementations (found through the ``plugformer`` entry point and
kept free of torch imports), ``task`` the :class:`SentimentTask`, ``baselines`` the majority
and TF-IDF + logistic-regression reference systems, ``datasets`` the real dataset recipes.
"""

__version__ = "0.1.0"
