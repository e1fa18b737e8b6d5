"""A request's fingerprint: the same body (up to key order and white space) gives the same one."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
