"""Length-grouped training batches (``finetune.group_by_length``): every epoch is still a
permutation, batches waste few padded positions, and the order is a function of the seed
and the position, so a resumed run sees the batches an uninterrupted one would."""

from __future__ import annotations

import random

from plugformer.config import FinetuneConfig
from plugformer.training.finetune_data import ResumableOrder


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 120) for _ in range(n)]


def _padding_efficiency(order: list[int], lengths: list[int], bs: int) -> float:
    batches = [order[i : i + bs] for i in range(0, len(order) - bs + 1, bs)]
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(bs * max(lengths[i] for i in b) for b in batches)
    return real / padded


def test_grouped_epochs_are_permutations_with_little_padding() -> None:
    lengths, bs = _lengths(), 16
    grouped = ResumableOrder(len(lengths), 3, 3 * len(lengths), lengths=lengths, batch_size=bs)
    plain = ResumableOrder(len(lengths), 3, 3 * len(lengths))
    for epoch in range(3):
        order = grouped.epoch_order(epoch)
        assert sorted(order) == list(range(len(lengths)))
        assert _padding_efficiency(order, lengths, bs) > 0.9
        assert _padding_efficiency(plain.epoch_order(epoch), lengths, bs) < 0.7
    # Batches of a pool come in random order, not shortest first.
    order = grouped.epoch_order(0)
    maxima = [max(lengths[i] for i in order[b : b + bs]) for b in range(0, len(order), bs)]
    assert maxima[:10] != sorted(maxima[:10])
    assert grouped.epoch_order(0) != grouped.epoch_order(1)


def test_grouped_order_is_seeded_and_resumable() -> None:
    lengths, bs = _lengths(200), 8
    total = 5 * len(lengths) + 37  # epochs run into each other
    whole = list(ResumableOrder(len(lengths), 7, total, lengths=lengths, batch_size=bs))
    again = list(ResumableOrder(len(lengths), 7, total, lengths=lengths, batch_size=bs))
    other = list(ResumableOrder(len(lengths), 8, total, lengths=lengths, batch_size=bs))
    assert whole == again != other
    start = 57 * bs  # resumed after step 57, inside the third epoch
    resumed = list(ResumableOrder(len(lengths), 7, total, start, lengths=lengths, batch_size=bs))
    assert resumed == whole[start:]


def test_group_by_length_is_the_default_and_can_be_turned_off() -> None:
    assert FinetuneConfig().group_by_length is True
    assert FinetuneConfig(group_by_length=False).group_by_length is False
