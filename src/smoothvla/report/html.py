"""One self-contained HTML file: tables inline, figures embedded as base64 PNG, headings with
anchors for in-page links, and trusted fragments (the side-by-side videos) with their style
and script."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 9px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
.note { color: #555; font-size: 14px; }
a { color: #2a4466; }
"""


@dataclass
class HtmlReport:
    """Sections of headings, paragraphs, tables and figures, rendered in order."""

    title: str
    parts: list[str] = field(default_factory=list)
    figures: int = 0
    styles: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def links(self, items: list[tuple[str, str]]) -> None:
        """A list of links to anchors in this page: (text, anchor)."""
        body = "".join(f'<li><a href="#{html.escape(a)}">{html.escape(t)}</a></li>'
                       for t, a in items)
        self.parts.append(f'<ul class="note">{body}</ul>')

    def raw(self, markup: str, style: str = "", script: str = "") -> None:
        """A trusted HTML fragment built by the report itself; `style` and `script` are
        added to the page once each."""
        self.parts.append(markup)
        if style and style not in self.styles:
            self.styles.append(style)
        if script and script not in self.scripts:
            self.scripts.append(script)

    def paragraph(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def table(self, header: list[str], rows: list[list]) -> None:
        def cell(v) -> str:
            return html.escape(f"{v:.3f}" if isinstance(v, float) else str(v))

        head = "".join(f"<th>{cell(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, png: bytes, alt: str) -> None:
        data = base64.b64encode(png).decode()
        self.figures += 1
        self.parts.append(
            f'<figure><img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>"
        )

    def render(self) -> str:
        scripts = "".join(f"<script>{s}</script>" for s in self.scripts)
        return (
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}{''.join(self.styles)}"
            "</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>" + "\n".join(self.parts) + scripts
            + "</body></html>"
        )
