"""Stored notifications as JSON bytes, for every way they leave: lists, streams, replays.

Encoding one must never fail: a row that could not be encoded would turn every later read of
its user's inbox into a 500 and stall every stream that replays it. Validation refuses what the
encoder cannot take (see `MAX_DATA_DEPTH`), so this is the last line of defence, for rows stored
before a limit existed or written by other means: such a row is served without its `data`,
with `data_error` saying why, and logged, rather than taking its user's inbox down with it."""

from __future__ import annotations

import logging

import orjson

from tocsin.domain.models import Notification

log = logging.getLogger("tocsin")

DATA_ERROR = "this notification's data cannot be encoded; it is left out"


def notification_json(notification: Notification) -> bytes:
    """The notification as the list returns it, encoded."""
    body = notification.to_json()
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        log.error("notification %s of user %r cannot be encoded (%s); serving it without its "
                  "data", notification.id, notification.user_id, exc)
        body["data"] = {}
        body["data_error"] = DATA_ERROR
        return orjson.dumps(body)


def notifications_json(notifications: list[Notification]) -> list[orjson.Fragment]:
    """Each notification encoded on its own, to embed in a larger response."""
    return [orjson.Fragment(notification_json(item)) for item in notifications]
