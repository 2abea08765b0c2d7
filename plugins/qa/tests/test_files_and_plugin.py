"""Tests of the QA plugin's edges: reading SQuAD JSON, JSONL and TSV files (with clear
errors naming the file and place), and the plugin's discovery through its entry point
without importing torch. The examples are written here; no model is trained.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plugformer import DataError
from plugformer_qa.task import QATask


def _row(i: int, context: str, question: str, answer: str) -> dict[str, Any]:
    return {
        "id": f"q{i}",
        "context": context,
        "question": question,
        "answers": [{"text": answer, "answer_start": context.index(answer)}],
    }


TRAIN = [
    _row(0, "the code of the north gate is red and the south gate is blue", "north code?", "red"),
    _row(1, "we walked past old houses and the door was painted green", "door colour?", "green"),
    _row(2, "near a river the boat carried an amber lamp all night", "lamp colour?", "amber"),
]


def squad_document() -> dict[str, Any]:
    rows = TRAIN[:3]
    return {
        "version": "1.1",
        "data": [
            {
                "title": "Codes",
                "paragraphs": [
                    {
                        "context": r["context"],
                        "qas": [
                            {"id": r["id"], "question": r["question"], "answers": r["answers"]}
                        ],
                    }
                    for r in rows
                ],
            }
        ],
    }


def test_reads_squad_json_through_the_plugin_hook(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(squad_document()), encoding="utf-8")
    examples = QATask().read_file(path)
    assert [e.id for e in examples] == [r["id"] for r in TRAIN[:3]]
    assert (
        examples[0].context == TRAIN[0]["context"]
        and examples[0].answers[0].text == TRAIN[0]["answers"][0]["text"]
    )


def test_a_bad_squad_question_is_named_by_its_json_location(tmp_path: Path) -> None:
    document = squad_document()
    document["data"][0]["paragraphs"][2]["qas"][0]["answers"][0]["answer_start"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(
        DataError, match=r"bad.json: data\[0\]\.paragraphs\[2\]\.qas\[0\]: .*is not at character 0"
    ):
        QATask().read_file(path)
    document["data"][0]["paragraphs"][1]["qas"] = {"oops": 1}
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(
        DataError, match=r"bad.json: data\[0\]\.paragraphs\[1\]: field 'qas' must be a list"
    ):
        QATask().read_file(path)


def test_other_json_is_left_to_the_core(tmp_path: Path) -> None:
    from plugformer_qa.plugin import read_examples

    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    assert read_examples(str(path), QATask()) is None
    (tmp_path / "d.json").write_text(json.dumps(squad_document()), encoding="utf-8")

    class Other:
        name = "sentiment"

    assert read_examples(str(tmp_path / "d.json"), Other()) is None


def test_reads_jsonl_and_tsv_with_column_mapping(tmp_path: Path) -> None:
    rows = [
        {
            "qid": r["id"],
            "passage": r["context"],
            "question": r["question"],
            "answers": r["answers"],
        }
        for r in TRAIN[:2]
    ]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task = QATask({"columns": {"id": "qid", "context": "passage"}})
    assert [e.id for e in task.read_file(tmp_path / "a.jsonl")] == [r["id"] for r in TRAIN[:2]]
    (tmp_path / "a.tsv").write_text(
        "question\tpassage\nwhat is the code?\tthe code is red\n", encoding="utf-8"
    )
    (example,) = QATask({"columns": {"context": "passage"}}).read_file(tmp_path / "a.tsv")
    assert example.context == "the code is red" and example.answers == []


def test_a_bad_jsonl_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(TRAIN[0]) + "\n" + json.dumps({"context": "c", "answers": []}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'question'"):
        QATask().read_file(path)


def test_plugin_is_discovered_through_its_entry_point() -> None:
    from plugformer import plugins

    plugins.reset()
    assert plugins.get_task_class("qa") is QATask
    info = next(i for i in plugins.plugin_infos() if i.name == "qa")
    assert (info.status, info.distribution, info.api) == ("ok", "plugformer-qa", ">=1,<2"), (
        info.error
    )
    assert "read_examples" in info.hooks


def test_plugin_module_does_not_import_torch() -> None:
    code = "import sys, plugformer_qa.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
