"""Read the project's reStructuredText-flavoured docstrings as Markdown for mkdocstrings.

The docstrings are written for ``help()`` and for the terminal first: Google-style sections, with
Sphinx roles (``:class:`~musicenv.world.World```), simple tables drawn with ``=`` rules and
``Example::`` literal blocks. This griffe extension, loaded by ``mkdocs.yml``, rewrites them as the
site is built (the source files are not touched):

* a role naming a fully qualified object of the project becomes a cross-reference
  (``[`World`][musicenv.world.World]``), so a reference to an object that no longer exists fails
  ``mkdocs build --strict``; any other role (a short name, torch, numpy) becomes inline code;
* a simple table becomes a preformatted block, laid out as in the source;
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


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    label = target.rsplit(".", 1)[-1] if short else target
    if target.startswith(PROJECT_PACKAGES):
        return f"[`{label}`][{target}]"
    return f"`{label}`"


def _design_section(match: re.Match[str]) -> str:
    """A link, checked by autorefs, to the heading of docs/design.md that the quoted name names."""
    name = " ".join(match.group("section").split())
    return f'[docs/design.md{match.group("sep")}"{name}"][{slugify(name, "-")}]'


def _fence_tables(text: str) -> str:
    """Wrap each simple table (three ``=`` rules: top, under the header, bottom) in a code fence."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        rules = [j for j in range(i, len(lines)) if TABLE_RULE.match(lines[j])] if TABLE_RULE.match(lines[i]) else []
        if len(rules) >= 2:
            # Three rules (top, under the header, bottom) unless a blank line ends the table sooner.
            end = rules[2] if len(rules) >= 3 and all(line.strip() for line in lines[i : rules[2]]) else rules[1]
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            block = [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines[i : end + 1]]
            out += ["", indent + "```text", *[indent + line for line in block], indent + "```", ""]
            i = end + 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def markdown(text: str) -> str:
    """The docstring ``text`` as Markdown."""
    text = ROLE.sub(_role, text)
    text = DESIGN_SECTION.sub(_design_section, text)
    text = DESIGN_PAGE.sub("[docs/design.md][design]", text)
    text = _fence_tables(text)
    return re.sub(r"(\S)::\n", r"\1:\n", text)


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
