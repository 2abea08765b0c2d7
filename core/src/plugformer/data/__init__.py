"""Data: dataset recipes (real public data from package registries), example readers, and
the token-id corpus cache used by pretraining."""
