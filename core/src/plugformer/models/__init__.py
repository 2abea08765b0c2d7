"""The backbones: model code and what makes a model one.

``gpt`` (the native decoder-only Transformer), ``encdec`` (the encoder–decoder), ``families``
(the contract an architecture meets to be a backbone family) and ``backbones`` (the
``Backbone`` protocol and resolution of backbone references). Nothing is re-exported here.
"""
