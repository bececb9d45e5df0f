"""Reading an operator guide (docs/*.md) the way a new operator does: its numbered sections,
their fenced shell blocks, the commands in them and the flags those commands pass."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def text(doc: str) -> str:
    return (ROOT / doc).read_text()


def section(doc: str, number: int) -> str:
    """The body of ``## <number>. ...`` up to the next ``## `` heading."""
    parts = re.split(r"^## ", text(doc), flags=re.M)
    for part in parts:
        if part.startswith(f"{number}. "):
            return part
    raise AssertionError(f"{doc} has no section {number}")


def subsection(doc: str, title: str) -> str:
    """The body of ``### <title>`` up to the next heading."""
    body = text(doc).split(f"\n### {title}\n", 1)
    assert len(body) == 2, f"{doc} has no subsection {title!r}"
    return re.split(r"^#{2,3} ", body[1], flags=re.M)[0]


def blocks(body: str, lang: str = "bash") -> list[str]:
    """The fenced ``lang`` blocks of a piece of markdown."""
    return re.findall(rf"^```{lang}\n(.*?)^```", body, flags=re.M | re.S)


def rehearsal(doc: str) -> str:
    """The guide's ``<!-- rehearsal -->`` bash block, which its test runs as written."""
    body = text(doc).split("<!-- rehearsal -->\n", 1)[1].split("<!-- /rehearsal -->", 1)[0]
    (block,) = blocks(body)
    return block


def commands(block: str) -> list[list[str]]:
    """Each command line of a shell block as argv: continuations joined, comments, redirections
    and a trailing ``&`` dropped (``a && b`` gives both)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        current: list[str] = []
        skip = False
        for word in argv + ["&&"]:
            if skip:
                skip = False
            elif word in ("&&", "||", ";", "&", "|"):
                if current:
                    out.append(current)
                current = []
            elif word in ("<", ">", ">>", "2>") or word.startswith((">", "2>")):
                skip = word in ("<", ">", ">>", "2>")  # the file name follows (<NETUID> stays)
            else:
                current.append(word)
    return out


def first(block: str, name: str) -> list[str]:
    """The first command of ``block`` that runs ``name``."""
    found = [argv for argv in commands(block) if argv and argv[0] == name]
    assert found, f"no {name} command in:\n{block}"
    return found[0]


def flags(argv: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}
