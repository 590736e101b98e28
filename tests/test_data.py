"""Dataset loading: every accepted row shape, the backspace repair, and errors reported by line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arpo_engine.data import DataError, load_samples, load_sft_demos, write_jsonl


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _verl_row(question: str, truth: Any) -> dict[str, Any]:
    return {
        "data_source": "math_dapo",
        "prompt": [{"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": {"index": 7, "split": "train"},
    }


def _errors(path: Path) -> list[str]:
    with pytest.raises(DataError) as info:
        load_samples(path)
    return info.value.errors


# --- accepted shapes -----------------------------------------------------------------------------


def test_jsonl_prompt_question_and_messages_rows_become_user_prompts(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "train.jsonl",
        [
            {"prompt": "What is 2+2?", "answer": "4"},
            {"question": "Capital of France?", "ground_truth": ["Paris", "paris"], "data_source": "geo"},
            {
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
                "answer": 3,
                "tools": ["python"],
                "level": "easy",
            },
        ],
    )
    first, second, third = load_samples(path)
    assert first.messages == [{"role": "user", "content": "What is 2+2?"}]
    assert first.answers == ("4",)
    assert first.data_source == "train"  # the file's stem when the row names none
    assert second.answers == ("Paris", "paris")
    assert second.data_source == "geo"
    assert third.messages[0] == {"role": "system", "content": "Be brief."}
    assert third.answers == ("3",)
    assert third.extra == {"tools": ["python"], "level": "easy"}
    assert [s.index for s in (first, second, third)] == [0, 1, 2]


def test_csv_rows_load_with_extra_columns_kept(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "q.csv",
        ["question", "answer", "data_source", "topic"],
        [["How many legs has a spider?", "8", "zoo", "animals"], ["Sum of 1 and 2?", "3", "", ""]],
    )
    spider, total = load_samples(path)
    assert spider.messages == [{"role": "user", "content": "How many legs has a spider?"}]
    assert spider.answers == ("8",)
    assert spider.data_source == "zoo"
    assert spider.extra == {"topic": "animals"}
    assert total.data_source == "q"
    assert total.extra == {}


def test_csv_messages_column_holding_json_is_decoded(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Go."}]
    path = _csv(tmp_path / "m.csv", ["messages", "answer"], [[json.dumps(messages), "done"]])
    (sample,) = load_samples(path)
    assert sample.messages == messages


def test_verl_parquet_rows_load_with_ground_truth_and_extra_info(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([_verl_row("Compute 6*7.", "42"), _verl_row("Name it.", "x")]), path)
    first, _ = load_samples(path)
    assert first.messages == [{"role": "user", "content": "Compute 6*7."}]
    assert first.answers == ("42",)
    assert first.data_source == "math_dapo"
    assert first.extra == {"ability": "math", "extra_info": {"index": 7, "split": "train"}, "reward_style": "rule"}


def test_verl_nesting_is_also_accepted_in_jsonl(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "v.jsonl", [_verl_row("Who?", ["Ada", "Ada Lovelace"])])
    (sample,) = load_samples(path)
    assert sample.answers == ("Ada", "Ada Lovelace")
    assert sample.extra["extra_info"] == {"index": 7, "split": "train"}


def test_search_r1_target_lists_are_read_as_ground_truths(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "s.jsonl", [_verl_row("Who?", {"target": ["Ada", "Lovelace"]})])
    assert load_samples(path)[0].answers == ("Ada", "Lovelace")


def test_literal_backspace_boxed_is_repaired_in_prompts_and_answers(tmp_path: Path) -> None:
    path = tmp_path / "arpo.parquet"
    row = _verl_row("Put the answer in \x08oxed{}.", "\x08oxed{12}")
    pq.write_table(pa.Table.from_pylist([row]), path)
    (sample,) = load_samples(path)
    assert sample.messages[0]["content"] == "Put the answer in \\boxed{}."
    assert sample.answers == ("\\boxed{12}",)


def test_blank_lines_in_jsonl_are_not_rows_and_do_not_shift_line_numbers(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "b.jsonl", [{"prompt": "a", "answer": "1"}, "", {"prompt": "b"}])
    assert _errors(path) == ['line 3: missing answer ("answer" or "ground_truth")']


# --- errors --------------------------------------------------------------------------------------


def test_every_bad_row_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "fine", "answer": "1"},
            {"prompt": "no answer here"},
            {"prompt": "   ", "answer": "1"},
            '{"prompt": "broken", ',
            {"prompt": 5, "answer": "1"},
            {"prompt": "ok", "answer": ["a", None]},
            ["not", "an", "object"],
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "answer": "x"},
            {"answer": "orphan"},
        ],
    )
    errors = _errors(path)
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in range(2, 10)]
    assert "missing answer" in errors[0]
    assert '"prompt" is empty' in errors[1]
    assert "malformed JSON" in errors[2]
    assert '"prompt" must be a string or a list of messages, got int' in errors[3]
    assert "got null" in errors[4]
    assert "expected an object, got list" in errors[5]
    assert "must end with a user message" in errors[6]
    assert "missing prompt" in errors[7]


def test_csv_errors_count_data_lines_from_one(tmp_path: Path) -> None:
    path = _csv(tmp_path / "bad.csv", ["prompt", "answer"], [["ok", "1"], ["no answer", ""], ["", "2"]])
    assert _errors(path) == [
        'line 2: missing answer ("answer" or "ground_truth")',
        'line 3: missing prompt ("prompt", "question" or "messages")',
    ]


def test_error_message_lists_twenty_problems_and_counts_the_rest(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "many.jsonl", [{"prompt": f"q{i}"} for i in range(25)])
    with pytest.raises(DataError) as info:
        load_samples(path)
    message = str(info.value)
    assert len(info.value.errors) == 25
    assert "25 problems" in message
    assert "line 20:" in message and "line 21:" not in message
    assert "… and 5 more" in message


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert _errors(path) == ["the file has no rows"]


def test_a_csv_with_only_a_header_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path / "header.csv", ["prompt", "answer"], [])
    assert _errors(path) == ["the file has no rows"]


def test_an_unsupported_file_type_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello\n")
    assert "unsupported file type '.txt'" in _errors(path)[0]


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    assert _errors(tmp_path / "nowhere.jsonl") == ["file not found"]


def test_a_corrupt_parquet_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"not parquet at all")
    assert _errors(path)[0].startswith("cannot read the parquet file")


# --- SFT demonstrations and writing ---------------------------------------------------------------

_TRAJECTORY = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "What is 6*7?"},
    {
        "role": "assistant",
        "content": "<python>print(6*7)</python> <result>\n42\n</result>\n<answer>\\boxed{42}</answer>",
    },
]


def test_sft_demos_load_with_their_tool_result_spans(tmp_path: Path) -> None:
    content = _TRAJECTORY[-1]["content"]
    start = content.index(" <result>")
    end = content.index("</result>") + len("</result>")
    path = _jsonl(tmp_path / "sft.jsonl", [{"messages": _TRAJECTORY, "spans": [[start, end]], "answer": "42"}])
    (demo,) = load_sft_demos(path)
    assert demo.messages == _TRAJECTORY
    assert demo.spans == ((start, end),)
    assert content[start:end] == " <result>\n42\n</result>"
    assert demo.extra == {"answer": "42"}


def test_sft_demos_with_tool_turns_are_accepted(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "6*7?"},
        {"role": "assistant", "content": "Let me compute.", "tool_calls": [{"name": "python"}]},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": "\\boxed{42}"},
    ]
    (demo,) = load_sft_demos(_jsonl(tmp_path / "sft.jsonl", [{"messages": messages}]))
    assert [m["role"] for m in demo.messages] == ["user", "assistant", "tool", "assistant"]
    assert demo.messages[1]["tool_calls"] == [{"name": "python"}]


def test_bad_sft_demos_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "sft.jsonl",
        [
            {"messages": _TRAJECTORY},
            {"messages": [{"role": "robot", "content": "beep"}, *_TRAJECTORY[1:]]},
            {"messages": _TRAJECTORY[:2]},
            {"messages": _TRAJECTORY, "spans": [[5, 10_000]]},
            {"messages": [_TRAJECTORY[0], _TRAJECTORY[2]]},
            {"prompt": "no messages"},
        ],
    )
    with pytest.raises(DataError) as info:
        load_sft_demos(path)
    errors = info.value.errors
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "role 'robot' is not one of assistant, system, tool, user" in errors[0]
    assert "must end with an assistant message" in errors[1]
    assert '"spans"[0] = [5, 10000]' in errors[2]
    assert "has no user message" in errors[3]
    assert 'missing "messages"' in errors[4]


def test_write_jsonl_rows_load_back_unchanged(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"question": "Ünïcode?", "answer": "ja"},
        {"question": "Two?", "answer": ["2", "two"]},
    ]
    path = tmp_path / "nested" / "out.jsonl"
    assert write_jsonl(path, rows) == 2
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows
    assert [s.answers for s in load_samples(path)] == [("ja",), ("2", "two")]
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


# --- streaming scan with limits (the web upload's path) ------------------------------------------


def test_scan_keeps_the_first_errors_and_counts_the_rest(tmp_path: Path) -> None:
    from arpo_engine.data import Limits, ScanReport, scan_samples

    path = _jsonl(tmp_path / "many.jsonl", [{"prompt": "ok", "answer": "1"}] + [{"prompt": f"q{i}"} for i in range(9)])
    report = ScanReport()
    good = list(scan_samples(path, report, Limits(max_errors=3)))
    assert [line for line, _ in good] == [1]
    assert report.rows == 10 and report.error_count == 9 and len(report.errors) == 3
    with pytest.raises(DataError) as info:
        report.raise_if_failed(path)
    assert info.value.total == 9 and "9 problems" in str(info.value) and "… and 6 more" in str(info.value)


def test_scan_stops_at_the_row_limit_and_refuses_overlong_lines(tmp_path: Path) -> None:
    from arpo_engine.data import Limits, ScanReport, scan_samples

    path = _jsonl(tmp_path / "t.jsonl", [{"prompt": "x" * 200, "answer": "1"}] + [{"prompt": "q", "answer": "1"}] * 5)
    report = ScanReport()
    list(scan_samples(path, report, Limits(max_rows=3, max_row_chars=50)))
    assert report.errors == [
        "line 1: the line is longer than 50 characters",
        "line 4: the file has more than 3 rows, the most accepted",
    ]


def test_duplicate_json_keys_and_csv_columns_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text('{"prompt": "q", "answer": "1", "answer": "2"}\n')
    assert _errors(path) == ["line 1: duplicate key 'answer'"]
    csv_path = _csv(tmp_path / "dup.csv", ["prompt", "answer", "prompt"], [["q", "1", "r"]])
    assert _errors(csv_path) == ["header: column 'prompt' appears more than once"]


def test_a_csv_header_without_an_answer_column_is_one_error(tmp_path: Path) -> None:
    path = _csv(tmp_path / "noanswer.csv", ["question", "notes"], [["q", "n"]] * 5)
    assert _errors(path) == ['header: no "answer" or "ground_truth" or "reward_model" column']


def test_formula_cells_are_refused_only_when_asked(tmp_path: Path) -> None:
    from arpo_engine.data import Limits, ScanReport, scan_samples

    path = _csv(tmp_path / "f.csv", ["prompt", "answer"], [["=1+1", "2"], ["What is -3 + 5?", "-2"], ["+SUM(A1)", "3"]])
    assert len(load_samples(path)) == 3  # the engine reads the file as it is
    report = ScanReport()
    list(scan_samples(path, report, Limits(reject_csv_formulas=True)))
    assert [e.split(":")[0] for e in report.errors] == ["line 1", "line 3"]


def test_an_encoding_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"prompt": "ok", "answer": "1"}\n{"prompt": "caf\xe9", "answer": "1"}\n')
    assert _errors(path) == ["line 2: not UTF-8 text (byte 16 of the line); save the file as UTF-8"]
