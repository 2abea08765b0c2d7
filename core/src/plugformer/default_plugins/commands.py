"""The core's own commands, added through ``register_commands`` like any plugin's.

pytest builds its own features as plugins registered through the same manager as third-party
ones; plugformer's built-in commands go the same route. The commands themselves live in
:mod:`plugformer.cli` (one module per family); this plugin only attaches them. What a default
plugin adds is a core command: no other plugin may replace it.
"""

from __future__ import annotations

from typing import Any

from plugformer.hookspecs import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from plugformer.cli import bench, catalog, inspect, predict, quickstart, run
    from plugformer.data.commands import data

    for command in (
        run.pretrain,
        run.finetune,
        run.evaluate,
        predict.predict,
        predict.generate,
        inspect.ckpt,
        inspect.config,
        catalog.plugins_cmd,
        catalog.tasks_cmd,
        catalog.suites_cmd,
        catalog.new_plugin,
        data,
        bench.bench,
        quickstart.quickstart,
    ):
        cli.add_command(command)
