"""The HTML part of every mail, rendered from its plain text (one template set): each
paragraph escaped, links made clickable after escaping, nothing else interpreted."""

from __future__ import annotations

import html
import re

_URL = re.compile(r"https?://[^\s<>\"']+")


def _linkify(escaped: str) -> str:
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def html_body(subject: str, text: str) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    rendered = "\n".join(
        f"<p>{'<br>'.join(_linkify(html.escape(line, quote=True)) for line in p.splitlines())}</p>" for p in paragraphs
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>"
        f'<body style="font-family:sans-serif;line-height:1.5">\n{rendered}\n</body></html>\n'
    )
