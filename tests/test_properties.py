"""Property-based tests (hypothesis, bounded): arbitrary input to the config loader, the
example readers and the checkpoint loader either works or raises the project's own error
(ConfigError / DataError / CheckpointError) — never another exception, never a half result."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plugformer.config import PretrainConfig, TaskSpec, apply_overrides, load_config, parse_model
from plugformer.data.readers import read_records
from plugformer.errors import CheckpointError, ConfigError, DataError

BOUNDED = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- config loader

KEYS = ["model", "trainer", "optim", "data", "tokenizer", "seed", "out_dir", "objective", "preset", "d_model",
        "n_heads", "n_layers", "max_steps", "batch_size", "lr", "betas", "corpus", "strategy", "devices", "x"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(["micro", "tiny", "auto", "ddp", "clm", "mlm", "fsdp"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(KEYS), c, max_size=4),
    max_leaves=20,
)
config_dicts = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


@BOUNDED
@given(config_dicts)
def test_config_dicts_validate_or_config_error(data: dict) -> None:
    for model in (PretrainConfig, TaskSpec):
        try:
            cfg = parse_model(model, data, "prop.toml")
        except ConfigError as exc:
            assert str(exc).startswith("prop.toml: ") and "\n" not in str(exc)
        else:
            assert isinstance(cfg, model)


toml_fragments = st.sampled_from(
    ["[model]", "[trainer]", "[optim]", "[data]", "preset = 'micro'", "d_model = 16", "n_heads = 3",
     "max_steps = 0", "max_steps = 10", "lr = -1", "betas = [0.9, 0.95]", "betas = 'x'", "seed = 1",
     "corpus = ['a.txt']", "x = 1", "[[model]]", "a.b.c = 1", "= 1", "'", '"""', "[", "]", "\x00",
     "devices = 2", "strategy = 'ddp'", "objective = 'mlm'", "causal = false", "inf = inf", "n = nan"]
)  # fmt: skip
toml_texts = st.lists(st.one_of(toml_fragments, st.text(max_size=15)), max_size=10).map("\n".join)


@BOUNDED
@given(st.one_of(toml_texts, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_config_files_load_or_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.toml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            cfg = load_config(path, PretrainConfig)
        except ConfigError as exc:
            assert str(path) in str(exc)
        else:
            assert isinstance(cfg, PretrainConfig)


@BOUNDED
@given(st.lists(st.text(max_size=30), max_size=5))
def test_overrides_apply_or_config_error(overrides: list[str]) -> None:
    base = {"model": {"preset": "micro"}, "seed": 0}
    try:
        data = apply_overrides(base, overrides)
    except ConfigError:
        return
    assert base == {"model": {"preset": "micro"}, "seed": 0}  # never mutated
    try:
        parse_model(PretrainConfig, data)
    except ConfigError:
        pass


# --------------------------------------------------------------------------- example readers

interesting_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b'{"text": "a", "label": "b"}', b"[1]", b"{", b'"x"', b"text,label", b"a,b",
                              b"a\tb", b"\xff\xfe", b"\x00", b'"quoted, field"', b'"', b"", b"\r", b"null",
                              b'{"text": 1}', b"\xc3\x28", "é".encode()]), max_size=8).map(b"\n".join),
)  # fmt: skip


@BOUNDED
@given(st.sampled_from([".jsonl", ".csv", ".tsv", ".txt"]), interesting_bytes, st.booleans())
def test_readers_give_records_or_data_error(
    suffix: str, content: bytes, with_columns: bool
) -> None:
    columns = {"text": "text", "label": "label"} if with_columns else None
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        path.write_bytes(content)
        try:
            rows = list(read_records(path, columns))
        except DataError as exc:
            msg = str(exc)
            assert msg.startswith(str(path)) and "\n" not in msg, msg
            return
    assert rows, "no rows must be a DataError (empty file)"
    for where, rec in rows:
        assert where.startswith(f"{path}:") and isinstance(rec, dict)
        if with_columns:
            assert {"text", "label"} <= rec.keys()


# --------------------------------------------------------------------------- checkpoint loader


@pytest.fixture(scope="module")
def ckpt_files(micro_checkpoint: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in micro_checkpoint.iterdir() if p.is_file()}


def _mutate(data: bytes, how: str, pos: float, junk: bytes) -> bytes:
    i = int(pos * len(data))
    if how == "truncate":
        return data[:i]
    if how == "flip":
        return (
            data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :] if i < len(data) else data + b"\x00"
        )
    if how == "insert":
        return data[:i] + junk + data[i:]
    return junk  # replace


mutations = st.tuples(
    st.sampled_from(["plugformer.json", "model.safetensors", "tokenizer.json"]),
    st.sampled_from(["truncate", "flip", "insert", "replace"]),
    st.floats(0, 1),
    st.binary(max_size=64),
)


@BOUNDED
@given(mutations)
def test_checkpoint_loader_loads_fully_or_checkpoint_error(
    ckpt_files: dict[str, bytes], mutation
) -> None:
    from plugformer.checkpoint import load_backbone

    name, how, pos, junk = mutation
    changed = _mutate(ckpt_files[name], how, pos, junk)
    assume(changed != ckpt_files[name])
    with tempfile.TemporaryDirectory() as d:
        ck = Path(d) / "ck"
        ck.mkdir()
        for fname, data in ckpt_files.items():
            (ck / fname).write_bytes(changed if fname == name else data)
        try:
            loaded = load_backbone(ck)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            return
        # it loaded: then it is complete — every parameter is there and finite-shaped
        sd = loaded.model.state_dict()
        assert sd and all(v.numel() for v in sd.values())


@BOUNDED
@given(st.dictionaries(st.sampled_from(["format_version", "kind", "model_config", "tokenizer_sha256", "x"]),
                       values, max_size=5))  # fmt: skip
def test_random_manifests_give_checkpoint_error(micro_checkpoint: Path, manifest: dict) -> None:
    from plugformer.checkpoint import load_backbone

    with tempfile.TemporaryDirectory() as d:
        ck = Path(d) / "ck"
        shutil.copytree(micro_checkpoint, ck)
        (ck / "plugformer.json").write_text(json.dumps(manifest))
        try:
            load_backbone(ck)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
        else:  # only a manifest that really describes these weights may load
            assert manifest.get("format_version") in (0, 1) and isinstance(
                manifest.get("model_config"), dict
            )
