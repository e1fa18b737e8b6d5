"""A request's fingerprint: equal bodies match whatever their key order; others never do."""

from __future__ import annotations

from typing import Any

from tocsin.pipeline.fingerprint import fingerprint


def test_key_order_does_not_matter() -> None:
    one = {"user_id": "a", "type": "t", "data": {"x": 1, "y": [1, {"b": 2, "a": 1}]}}
    two = {"data": {"y": [1, {"a": 1, "b": 2}], "x": 1}, "type": "t", "user_id": "a"}
    assert fingerprint(one) == fingerprint(two)


def test_any_change_changes_it() -> None:
    base: dict[str, Any] = {"user_id": "a", "type": "t", "data": {"x": 1}}
    variants: list[dict[str, Any]] = [
        {**base, "type": "u"},
        {**base, "data": {"x": 2}},
        {**base, "data": {"x": "1"}},
        {**base, "title": None},
        {"user_ids": ["a"], "type": "t", "data": {"x": 1}},
    ]
    prints = {fingerprint(v) for v in variants}
    assert fingerprint(base) not in prints
    assert len(prints) == len(variants)
