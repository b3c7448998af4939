"""Reading a vendor page's marked tables (docs/vendors/*.md), for the tests that hold the
pages and the mapping tables to each other."""

from __future__ import annotations

from pathlib import Path


def marked_table(page: Path, name: str) -> list[list[str]]:
    """The body rows of the table between `<!-- mapping:name -->` and `<!-- /mapping -->`,
    cells stripped of their backticks."""
    text = page.read_text()
    start = text.index(f"<!-- mapping:{name} -->")
    end = text.index("<!-- /mapping -->", start)
    rows = []
    for line in text[start:end].splitlines():
        if not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows.append([c.strip("`") for c in cells])
    return rows[1:]  # without the header
