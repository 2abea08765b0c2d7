"""The ``plugformer`` command line.

``main`` holds the root group and the entry point; each other module holds one family of
built-in commands (``run``: pretrain / finetune / evaluate; ``predict``: predict / generate;
``inspect``: ckpt / config; ``catalog``: plugins / tasks / suites / new-plugin; ``bench``;
``quickstart``). None is attached here: :mod:`plugformer.default_plugins.commands` adds them
through ``register_commands``, the hook every plugin's commands go through.
"""
