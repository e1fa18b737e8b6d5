"""Rows to models and models to rows: the one place that knows which column is which field.

A field of `Notification` is a column of the same name in `notifications`, so the mapping is
derived from the dataclass rather than written out again in every query."""

from __future__ import annotations

import dataclasses
from typing import Any

from tocsin.domain.models import ApiKey, Notification, UserProfile

NOTIFICATION_FIELDS = tuple(f.name for f in dataclasses.fields(Notification))
PROFILE_FIELDS = ("email", "name", "locale", "timezone")


def notification_from(row: Any) -> Notification:
    values = row._mapping
    return Notification(**{name: values[name] for name in NOTIFICATION_FIELDS})


def notification_values(notification: Notification, **extra: Any) -> dict[str, Any]:
    """The row of a notification, with columns the model does not carry (`publisher`…)."""
    return {**{name: getattr(notification, name) for name in NOTIFICATION_FIELDS}, **extra}


def profile_from(row: Any, *, id_column: str = "id", prefix: str = "") -> UserProfile:
    values = row._mapping
    return UserProfile(id=values[id_column],
                       **{name: values[f"{prefix}{name}"] for name in PROFILE_FIELDS})


def profile_values(profile: UserProfile) -> dict[str, Any]:
    return {name: getattr(profile, name) for name in PROFILE_FIELDS}


def api_key_from(row: Any) -> ApiKey:
    return ApiKey(id=row.id, name=row.name, created_at=row.created_at,
                  revoked_at=row.revoked_at, last_used_at=row.last_used_at)
