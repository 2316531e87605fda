"""Renders chat templates as Hugging Face transformers does (apply_chat_template's Jinja2 environment), the
reference that Loom's Jinja interpreter is compared against byte for byte.

Reads {"cases": [{"template": str, "variables": {...}, "now": "YYYY-MM-DD" or null}]} on stdin and writes
[{"output": str} or {"error": str}] on stdout, one entry per case.
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def render(case):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    if case.get("now"):
        now = datetime.strptime(case["now"], "%Y-%m-%d")
        env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    try:
        return {"output": env.from_string(case["template"]).render(**case["variables"])}
    except Exception as e:  # every failure is an expected answer: the test checks Loom fails too
        return {"error": f"{type(e).__name__}: {e}"}


cases = json.load(sys.stdin)["cases"]
json.dump([render(c) for c in cases], sys.stdout, ensure_ascii=False)
