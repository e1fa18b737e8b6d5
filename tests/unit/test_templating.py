"""Templates render the data they are given, refuse what is missing, and keep out of the
sandbox's walls: a list of known Jinja2 sandbox escapes, each refused with a clear reason."""

from __future__ import annotations

import pytest

from tocsin.templating import MAX_OUTPUT, TemplateError, compile_template, render

DATA = {"actor": "Alice", "post_id": 7, "count": 3, "tags": ["a", "b"],
        "user": {"name": "Ada", "locale": "en"}}


@pytest.mark.parametrize(("source", "rendered"), [
    ("{{ actor }} commented on post {{ post_id }}", "Alice commented on post 7"),
    ("{{ actor }}{% if count > 1 %} and {{ count - 1 }} others{% endif %}",
     "Alice and 2 others"),
    ("Hi {{ user.name }}", "Hi Ada"),
    ("{{ tags | join(', ') }}", "a, b"),
    ("{{ actor | upper }} ({{ tags | length }})", "ALICE (2)"),
    ("{{ 'x' * 3 }}{{ 2 ** 10 }}", "xxx1024"),
    ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
    ("  {{ actor }}\n", "Alice"),
    ("<b>{{ actor }}</b>", "<b>Alice</b>"),  # text, not HTML: clients show it as it is
])
def test_templates_render_the_data(source: str, rendered: str) -> None:
    assert render(source, "title", DATA) == rendered


def test_a_missing_variable_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError) as refused:
        render("{{ actor }} liked {{ post_title }}", "title", DATA)
    assert "'post_title' is undefined" in refused.value.message
    assert refused.value.message.startswith("title: ")
    assert refused.value.details == {"field": "title", "reason": "undefined"}
    assert refused.value.status == 422 and refused.value.code == "template_error"


def test_a_template_that_does_not_compile_names_the_field_and_the_line() -> None:
    with pytest.raises(TemplateError) as refused:
        compile_template("Hello\n{{ actor ", "message")
    assert refused.value.message.startswith("message: the template does not compile (line 2)")


@pytest.mark.parametrize("source", [
    "{{ actor | no_such_filter }}",
    "{{ count / 0 }}",
    "{{ actor + 1 }}",
    "{{ tags[5] }}",
])
def test_a_failing_template_is_an_error_not_a_crash(source: str) -> None:
    with pytest.raises(TemplateError):
        render(source, "title", DATA)


#: Known ways out of a Jinja2 sandbox, each refused: reaching Python's internals through
#: attributes, globals of the built-in helpers, format strings, the attr filter, and
#: denial of service by size.
ESCAPES = {
    "class_mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "tuple_bases": "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "loop_subclasses": "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "template_context": "{{ self._TemplateReference__context }}",
    "lipsum_globals": "{{ lipsum.__globals__ }}",
    "cycler_globals": "{{ cycler.__init__.__globals__.os }}",
    "joiner_globals": "{{ joiner.__init__.__globals__ }}",
    "namespace_globals": "{{ namespace.__init__.__globals__ }}",
    "attr_filter": "{{ actor | attr('__class__') }}",
    "format_string": "{{ '{0.__class__.__mro__}'.format(actor) }}",
    "format_filter_globals": "{{ '%s' | format(lipsum.__globals__) }}",
    "dict_update": "{{ user.update({'name': 'x'}) }}",
    "huge_repetition": "{{ 'a' * 10000000 }}",
    "huge_range": "{{ range(10000000) | list | length }}",
    "huge_power": "{{ 10 ** 100000 }}",
    "huge_output": "{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}",
}


@pytest.mark.parametrize("name", ESCAPES)
def test_sandbox_escapes_are_refused(name: str) -> None:
    with pytest.raises(TemplateError) as refused:
        render(ESCAPES[name], "message", DATA)
    message = refused.value.message
    assert message.startswith("message: ")
    assert "<class" not in message and "<module" not in message and "<function" not in message
    assert len(message) < 500


def test_the_output_limit_is_what_it_says() -> None:
    assert len(render(f"{{{{ 'x' * {MAX_OUTPUT} }}}}", "message", DATA)) == MAX_OUTPUT
