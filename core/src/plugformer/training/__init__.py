"""Training: pretraining and fine-tuning, and the pieces they share.

``pretrain`` (the pretraining module, data and ``pretrain(config)``), ``finetune`` (one generic
fine-tuning module; ``finetune`` / ``evaluate``), ``common`` (seeding, optimiser groups,
Trainer construction, precision), ``schedule`` (the learning-rate schedule), ``objectives``
(pretraining objectives) and ``losses`` (the fused LM loss). Nothing is re-exported here.
"""
