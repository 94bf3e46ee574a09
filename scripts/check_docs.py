"""Docs check (run by .ci/run): every relative link in README.md and docs/*.md points at a file that
exists and, with ``#anchor``, at a heading of that file (GitHub's anchor rules); the README stays a
front door (at most ~12 kB). Exit 1 with one line per problem.

    python scripts/check_docs.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
README_MAX = 12_500


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    out: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        s = slug(line.lstrip("#"))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def check() -> list[str]:
    problems = []
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for md in files:
        in_code = False
        for no, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
            if in_code:
                continue
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z]+:", target):
                    continue  # http(s), mailto
                path, _, anchor = target.partition("#")
                dest = (md.parent / path).resolve() if path else md
                where = f"{md.relative_to(REPO)}:{no}"
                if not dest.exists():
                    problems.append(f"{where}: dead link {target}")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(REPO)}")
    size = len((REPO / "README.md").read_bytes())
    if size > README_MAX:
        problems.append(f"README.md: {size:,} bytes; the front door stays under {README_MAX:,} (move detail to docs/)")
    return problems


if __name__ == "__main__":
    found = check()
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
