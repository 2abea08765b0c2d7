"""Inference: loading a checkpoint to predict, and decoding.

``predictor`` (``load`` and the task ``Predictor``), ``generation`` (sampling from a
backbone), ``decoding`` (decoding strategies behind one per-step interface) and ``samples``
(logged test predictions). Nothing is re-exported here.
"""
