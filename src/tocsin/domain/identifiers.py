"""The rules a user id follows, wherever it comes from: a request body, a path, a token's `sub`.

One rule for every entry point, so no id can reach the store through one door that another
door would have refused (PostgreSQL text cannot hold NUL, for one)."""

from __future__ import annotations

import re

USER_ID_MAX_LENGTH = 255
#: No control characters (C0, including NUL, and DEL): they break logs, headers and PostgreSQL.
USER_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
_USER_ID = re.compile(USER_ID_PATTERN)


def user_id_problem(value: object) -> str | None:
    """Why `value` is not a valid user id, or None when it is one."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > USER_ID_MAX_LENGTH:
        return f"must be at most {USER_ID_MAX_LENGTH} characters"
    if not _USER_ID.match(value):
        return "must not contain control characters"
    return None
