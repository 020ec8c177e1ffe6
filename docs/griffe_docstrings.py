"""Read the project's reStructuredText-flavoured docstrings as Markdown for mkdocstrings.

The docstrings are written for ``help()`` and for the terminal first: Google-style sections, with
Sphinx roles (``:class:`~musicenv.world.World```), titled paragraphs (a title line, then its text
indented), simple tables drawn with ``=`` rules and ``Example::`` literal blocks. This griffe
extension, loaded by ``mkdocs.yml``, rewrites them as the site is built (the source files are not
touched):

* a titled paragraph becomes a bold title and its text, dedented;
* a simple table becomes a preformatted block, laid out as in the source (roles and ``code``
  marks inside it become plain names);
* a role naming a fully qualified object of the project becomes a cross-reference
  (``[`World`][musicenv.world.World]``), so a reference to an object that no longer exists fails
  ``mkdocs build --strict``; any other role (a short name, torch, numpy) becomes inline code;
* ``docs/design.md, "Section"`` becomes a link to that section of the design page, so a
  reference to a section that does not exist fails the strict build too;
* ``::`` ending a paragraph becomes ``:`` (the indented block below it is already a code block).
"""

from __future__ import annotations

import re

import griffe
from markdown.extensions.toc import slugify

PROJECT_PACKAGES = ("musicenv.", "world_model.", "agents.")
ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
TABLE_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")
DESIGN_SECTION = re.compile(r'docs/design\.md(?P<sep>,\s+|\s+\(|\s+)"(?P<section>[^"]+)"')
DESIGN_PAGE = re.compile(r"(?<![\[/\w])docs/design\.md(?![\]\w])")
FENCE = re.compile(r"(^```text\n.*?^```$)", re.MULTILINE | re.DOTALL)
INDENT = "    "


def _label(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    return target.rsplit(".", 1)[-1] if short else target


def _role(match: re.Match[str]) -> str:
    target = match.group(2).strip()
    if target.startswith(PROJECT_PACKAGES):
        return f"[`{_label(match)}`][{target}]"
    return f"`{_label(match)}`"


def _design_section(match: re.Match[str]) -> str:
    """A link, checked by autorefs, to the heading of docs/design.md that the quoted name names."""
    name = " ".join(match.group("section").split())
    return f'[docs/design.md{match.group("sep")}"{name}"][{slugify(name, "-")}]'


def _titled_paragraphs(text: str) -> str:
    """``Title`` (after a blank line, no colon) then indented text: a bold title and the text, dedented."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        titled = (
            line.strip()
            and not line[0].isspace()
            and not line.rstrip().endswith(":")
            and (i == 0 or not lines[i - 1].strip())
            and i + 1 < len(lines)
            and lines[i + 1].startswith(INDENT)
            and lines[i + 1].strip()
        )
        if not titled:
            out.append(line)
            i += 1
            continue
        out += [f"**{line.strip()}**", ""]
        i += 1
        while i < len(lines) and (lines[i].startswith(INDENT) or not lines[i].strip()):
            out.append(lines[i][len(INDENT) :])
            i += 1
    return "\n".join(out)


def _fence_tables(text: str) -> str:
    """Wrap each simple table (``=`` rules: top, under the header, bottom) in a text fence."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        rules = [j for j in range(i, len(lines)) if TABLE_RULE.match(lines[j])] if TABLE_RULE.match(lines[i]) else []
        if len(rules) >= 2:
            # Three rules (top, under the header, bottom) unless a blank line ends the table sooner.
            end = rules[2] if len(rules) >= 3 and all(line.strip() for line in lines[i : rules[2]]) else rules[1]
            indent = len(lines[i]) - len(lines[i].lstrip())
            rows = [line[indent:] for line in lines[i : end + 1]]
            rows = [ROLE.sub(_label, row).replace("``", "") for row in rows]
            out += ["", "```text", *rows, "```", ""]
            i = end + 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _prose(text: str) -> str:
    text = ROLE.sub(_role, text)
    text = DESIGN_SECTION.sub(_design_section, text)
    text = DESIGN_PAGE.sub("[docs/design.md][design]", text)
    return re.sub(r"(\S)::\n", r"\1:\n", text)


def markdown(text: str) -> str:
    """The docstring ``text`` as Markdown."""
    text = _fence_tables(_titled_paragraphs(text))
    return "".join(part if FENCE.fullmatch(part) else _prose(part) for part in FENCE.split(text))


class RestructuredTextToMarkdown(griffe.Extension):
    """Rewrite every docstring of a loaded package with :func:`markdown`."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: object) -> None:
        self._rewrite(pkg)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member)
