"""The plugin contract: every hook plugformer calls, each documented where it is declared.

A plugin is a module (found through the ``plugformer`` entry-point group, or registered
by the core as a default) that implements some of these hooks with ``@hookimpl``::

    from plugformer import hookimpl

    @hookimpl
    def register_tasks(register):
        register(MyTask)

Rules that keep old plugins working: hooks only ever *gain* arguments (pluggy passes a
hook implementation only the arguments it names), and registration hooks take a
``register`` callback rather than returning values (the simonw/llm convention).

Hooks are grouped below: registration, training, command line, results, data.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "plugformer"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]


# --------------------------------------------------------------------------- registration


@hookspec
def register_tasks(register: Any) -> None:
    """Register task kinds (sentiment, qa, ...).

    :param register: call ``register(TaskClass)`` once per :class:`plugformer.Task`
        subclass. To keep ``plugformer plugins`` free of heavy imports, a plugin may instead
        call ``register("module.path:ClassName", name="task-name")``; the class is then
        imported only when the task is used.

    Called once, when the plugin manager is first asked for tasks. Two plugins that register
    the same task name are an error naming both distributions. Returns nothing.
    """


@hookspec
def register_backbones(register: Any) -> None:
    """Register backbone families.

    :param register: call ``register(name, family)`` where ``name`` is a family prefix
        (``"native"``, ``"hf"``) and ``family`` a :class:`plugformer.models.families.BackboneFamily`
        instance: its ``resolve(ref, **options)`` returns a
        :class:`plugformer.models.families.LoadedBackbone` (model and tokenizer) for the part of
        a reference after ``"name:"`` (``"hf:minilm-l6"`` resolves ``"minilm-l6"``); its
        ``build(model_config)`` lets ``model.family = name`` pretrain and gives ``scratch:``
        twins and checkpoint loading. The older form, a plain callable
        ``factory(ref, **options) -> LoadedBackbone``, only resolves references; any other
        return type is refused. A plain directory path is resolved by the family its manifest
        names. What a family's model must provide: docs/plugins.md#backbone-families.

    Called once, when a backbone reference is first resolved. Returns nothing.
    """


@hookspec
def register_datasets(register: Any) -> None:
    """Register dataset recipes: named real public datasets.

    :param register: call ``register(recipe)`` with a :class:`plugformer.Recipe` that says
        where the data comes from (a pinned package), its licence and citation, and how to
        parse it into examples of a task kind (or plain text for a ``corpus``).

    Called once, when datasets are first listed or resolved. Returns nothing.
    """


@hookspec
def register_objectives(register: Any) -> None:
    """Register pretraining objectives.

    :param register: call ``register(name, objective)`` where ``objective`` is an
        :class:`plugformer.Objective`: whether it needs a causal backbone, and how it turns a
        block of token ids into ``(inputs, targets)`` for the LM head (``"clm"`` shifts by
        one; ``"mlm"`` masks 15% of tokens; ``"denoise"`` makes ``corrupted <sep> original``).

    Called once, when ``pretrain`` resolves ``config.objective``. Returns nothing.
    """


@hookspec
def register_decoding_strategies(register: Any) -> None:
    """Register decoding strategies (how a generative task picks each next token).

    :param register: call ``register(name, factory)`` where ``factory(**options)`` returns a
        :class:`plugformer.inference.decoding.Strategy`: one per-step method choosing candidates from
        the log-probabilities of every live beam (the core registers ``"greedy"``,
        ``"sample"`` and ``"beam"``). :func:`plugformer.inference.decoding.decode` runs any of them.

    Called once, the first time a strategy is looked up. Returns nothing.
    """


# --------------------------------------------------------------------------- training


@hookspec
def register_callbacks(stage: str, config: Any) -> list[Any] | None:
    """Add Lightning callbacks to a Trainer that plugformer builds.

    :param stage: ``"pretrain"``, ``"finetune"`` or ``"evaluate"``.
    :param config: the run's configuration (a :class:`PretrainConfig` or a :class:`TaskSpec`).
    :return: a list of ``lightning.Callback`` instances, or ``None``. Results of all plugins
        are concatenated (not firstresult).
    """


# --------------------------------------------------------------------------- command line


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``plugformer`` command line.

    :param cli: the root ``click.Group``; call ``cli.command()`` / ``cli.add_command(cmd)``.
        Keep imports of torch inside the command functions so ``plugformer --help`` stays fast.

    Called once at CLI start-up. The core's own commands come through this hook too (the
    default plugin ``plugformer.default_plugins.commands``) and are added first; a plugin may
    not replace or remove them. A plugin's commands count with its other registrations, all
    together or not at all: a plugin that raises (or exits, or hangs) here adds none of its
    commands and is broken, its tasks and specs withdrawn; a plugin found broken in a
    registration hook loses its commands (left out of ``--help``; running one says the plugin
    is broken). The other plugins' commands are unaffected. Returns nothing.
    """


# --------------------------------------------------------------------------- results


@hookspec
def on_result(result: dict[str, Any]) -> None:
    """Be told of every finished evaluation (a ``plugformer evaluate`` run or a suite cell).

    :param result: a JSON-serialisable dict with at least ``task``, ``backbone``, ``seed``,
        ``metrics`` (name -> float), ``main_metric`` and ``versions``. Do not mutate it.

    Called on rank 0 only, once the result is computed. An exception raised here is
    reported and does not fail the run. Returns nothing.
    """


# --------------------------------------------------------------------------- data


@hookspec(firstresult=True)
def read_examples(path: str, task: Any) -> list[dict[str, Any]] | None:
    """Read a data file in a format the core does not know.

    :param path: the file a user named (a task spec's data or ``--data``).
    :param task: the :class:`plugformer.Task` instance the examples are for.
    :return: a list of raw example dicts (validated afterwards against ``task.Example``), or
        ``None`` if this plugin does not read this file.

    firstresult: stops at the first non-None result. The core's JSONL/CSV/TSV/text readers are
    used when every plugin returns ``None`` (the QA plugin reads SQuAD v1.1 JSON this way).
    """


# --------------------------------------------------------------------------- named configs


@hookspec
def register_specs(register: Any) -> None:
    """Register named config files shipped as package data: task specs, suites, pretraining configs.

    :param register: call ``register(path, kind="task")`` with a TOML file or a folder of them
        (every ``*.toml`` directly inside it). The name of each file is its file name without
        ``.toml``, unless ``name=`` is given for a single file. ``kind`` is ``"task"`` (a task
        spec, the default), ``"suite"`` (a benchmark suite) or ``"pretrain"`` (a pretraining
        config). A plugin ships its files inside its package (declared as package data) and
        passes ``importlib.resources.files(__package__) / "specs"``, so they are found from an
        installed wheel as from a checkout.

    A registered name works wherever a file does: ``plugformer finetune NAME``,
    ``plugformer bench NAME``, ``plugformer pretrain NAME`` and the ``tasks`` entries of a
    suite. ``plugformer tasks`` and ``plugformer suites`` list them. Two plugins that register
    the same name of the same kind are an error naming both distributions.

    Called once, when a name is first resolved or listed. Returns nothing.
    """
