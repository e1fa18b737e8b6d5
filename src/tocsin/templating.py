"""Notification text from templates: Jinja2 in a sandbox, strict about what it is given.

- Sandboxed (`ImmutableSandboxedEnvironment`): no attribute starting with `_`, no
  `__class__` or `mro()` walks, no unsafe callables, no changing the data it is given
  (`dict.update`, `list.append`); `range` is capped; `*` and `**` cannot build values that
  would exhaust memory; a rendering is cut at a size limit.
- Strict (`StrictUndefined`): a variable the data does not have is an error naming it, never
  an empty string in front of a user.
- Not autoescaped: titles and messages are text, shown as text by every client (the widget
  sets `textContent`; the email's HTML part escapes them itself).

Every failure is a `TemplateError` (422 at the edge) whose message names the field and the
reason; nothing else escapes a compile or a render.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tocsin.domain.errors import InvalidInput

#: Longest template source, and longest rendering, in characters.
MAX_SOURCE = 10_000
MAX_OUTPUT = 20_000
_MAX_RANGE = 1_000
_MAX_BUILT = 100_000  # characters or items a `*` or `**` may produce


class TemplateError(InvalidInput):
    code = "template_error"


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int) and abs(right) > 64:
                raise SecurityError("exponents are limited to 64")
            return operator.pow(left, right)
        if operator_ == "*":
            for many, times in ((left, right), (right, left)):
                if isinstance(many, str | list | tuple) and isinstance(times, int) and \
                        len(many) * times > _MAX_BUILT:
                    raise SecurityError(f"a repetition may make at most {_MAX_BUILT} items")
        return super().call_binop(context, operator_, left, right)


def _capped_range(*args: int) -> range:
    made = range(*args)
    if len(made) > _MAX_RANGE:
        raise SecurityError(f"range() may make at most {_MAX_RANGE} numbers")
    return made


_ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_ENV.globals["range"] = _capped_range


@lru_cache(maxsize=2048)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def compile_template(source: str, field: str) -> Template:
    """The compiled template, or `TemplateError` naming `field` and what is wrong."""
    if len(source) > MAX_SOURCE:
        raise TemplateError(f"{field}: templates are limited to {MAX_SOURCE} characters",
                            details={"field": field})
    try:
        return _compiled(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{field}: the template does not compile (line {exc.lineno}): "
                            f"{exc.message}", details={"field": field}) from None


@lru_cache(maxsize=2048)
def variables(source: str) -> frozenset[str]:
    """The names a (compilable) template reads from its context: a rendering that reads no
    per-recipient name can be shared by every recipient."""
    return frozenset(meta.find_undeclared_variables(_ENV.parse(source)))


def render(source: str, field: str, context: Mapping[str, Any]) -> str:
    """Render `source` with `context`; `TemplateError` naming the field and the reason."""
    template = compile_template(source, field)
    try:
        pieces: list[str] = []
        size = 0
        for piece in template.generate(**context):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateError(f"{field}: the rendering is longer than {MAX_OUTPUT} "
                                    "characters", details={"field": field})
            pieces.append(piece)
        return "".join(pieces).strip()
    except TemplateError:
        raise
    except UndefinedError as exc:
        message = exc.message or "a value is undefined"
        if "unsafe" in message:  # the sandbox answers forbidden attributes with an undefined
            raise TemplateError(f"{field}: refused by the template sandbox: {message}",
                                details={"field": field, "reason": "sandbox"}) from None
        raise TemplateError(f"{field}: {message} (the data has no such value)",
                            details={"field": field, "reason": "undefined"}) from None
    except SecurityError as exc:
        raise TemplateError(f"{field}: refused by the template sandbox: {exc}",
                            details={"field": field, "reason": "sandbox"}) from None
    except Exception as exc:  # a filter's error, a bad operand: the template's fault
        raise TemplateError(f"{field}: the template failed: {type(exc).__name__}: {exc}",
                            details={"field": field, "reason": "error"}) from None
