"""The optimizer's context is bounded; replies are parsed; placeholders are checked."""

from __future__ import annotations

from agentlightning_apo.proposer import Example, extract_prompt, format_examples, placeholder_fields


def test_critique_context_is_bounded_and_shows_the_worst_first() -> None:
    examples = [
        Example(
            task={"request": f"r{i}", "answer": f"A{i}"},
            reward=i / 10,
            conversation=[{"role": "user", "content": "x" * 5000}, {"role": "assistant", "content": "no"}],
        )
        for i in range(10)
    ]
    text = format_examples(examples, max_conversations=3, max_tokens=300)
    assert text.count("--- Example") == 3
    assert "Expected answer: A0" in text and "Expected answer: A2" in text and "A3" not in text
    assert len(text) <= 3 * (300 * 4 // 3) + 10  # about max_tokens tokens at 4 characters each


def test_extract_prompt_and_placeholders() -> None:
    assert extract_prompt("Sure!\n<prompt>\nNew {x}\n</prompt>\nbye") == "New {x}"
    assert extract_prompt("```\nFenced {x}\n```") == "Fenced {x}"
    assert placeholder_fields("a {x} b {y}") == ["x", "y"]
    assert placeholder_fields("a {billing, shipping}") is None
    assert placeholder_fields("unbalanced {x") is None


def test_examples_are_grouped_by_expected_answer_and_the_answer_is_not_repeated() -> None:
    answers = ["Maple", "Atlas", "Maple", "Atlas", "Pebble"]
    examples = [
        Example(
            task={"request": f"request {i}", "answer": answer},
            reward=0.0,
            conversation=[{"role": "user", "content": f"request {i}"}, {"role": "assistant", "content": "?"}],
        )
        for i, answer in enumerate(answers)
    ]
    text = format_examples(examples, max_conversations=5, max_tokens=2000)
    shown = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Expected answer")]
    assert shown == ["Maple", "Maple", "Atlas", "Atlas", "Pebble"]
    assert "Task: request 0\n" in text  # the single remaining field, not the dict with its answer
    two_fields = Example(task={"a": 1, "b": 2, "label": "X"}, reward=0.0, conversation=[])
    assert 'Task: {"a": 1, "b": 2}' in format_examples([two_fields], 1, 100)
