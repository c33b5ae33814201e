"""The HTML page of a report folder: title, derivation, comparison table and figures."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .atomic import write_text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return html.escape(str(value))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of ``rows`` (dicts); the columns are the union of their keys unless given."""
    if not rows:
        return "<p><em>no rows</em></p>"
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; line-height: 1.4; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #bbb; padding: 3px 8px; }
th { background: #eee; } pre { background: #f6f6f6; padding: 0.7em; overflow-x: auto; }
figure { margin: 1.5em 0; } img { max-width: 100%; } .fail { color: #b00; } .pass { color: #070; }
"""


def write_html(
    path: str | Path, title: str, sections: Sequence[tuple[str, str]], figures: Sequence[tuple[str, str]] = ()
) -> Path:
    """Write the report page.

    Args:
        path: the HTML file to write.
        title: page title.
        sections: (heading, HTML body) pairs, in order.
        figures: (caption, PNG file name relative to the page) pairs.

    Returns:
        The path written.
    """
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{body}")
    if figures:
        parts.append("<h2>Figures</h2>")
        for caption, src in figures:
            parts.append(
                f"<figure><img src='{html.escape(src)}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    path = Path(path)
    write_text(path, "\n".join(parts), what="report")
    return path


def pre(text: str) -> str:
    """Preformatted, escaped text."""
    return f"<pre>{html.escape(text)}</pre>"
