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
