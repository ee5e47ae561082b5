"""Small JSONL traces in the shipped datasets' shape, and bad lines of each kind, for imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def trace(n: int, tag: str, *, category: str = "arithmetic") -> dict[str, Any]:
    """A valid trace; `tag` makes its prompt unique to one test."""
    return {
        "trace_version": "1.0",
        "prompt": f"[{tag}] What is {n} + {n}?",
        "steps": [
            {"i": 0, "type": "setup", "content": f"Add {n} to itself."},
            {"i": 1, "type": "calculation", "content": f"{n} + {n} = {2 * n}"},
        ],
        "final_answer": str(2 * n),
        "meta": {"category": category, "index": n, "tag": tag},
    }


def good_lines(count: int, tag: str) -> list[str]:
    categories = ("arithmetic", "counting")
    return [json.dumps(trace(n, tag, category=categories[n % 2])) for n in range(count)]


def lines_with_bad(tag: str) -> tuple[list[str], set[int]]:
    """Five lines, of which 2 and 4 are bad: not JSON, and a trace without steps."""
    missing_steps = {key: value for key, value in trace(9, tag).items() if key != "steps"}
    lines = [
        json.dumps(trace(0, tag)),
        "{this is not json",
        json.dumps(trace(1, tag)),
        json.dumps(missing_steps),
        json.dumps(trace(2, tag)),
    ]
    return lines, {2, 4}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
