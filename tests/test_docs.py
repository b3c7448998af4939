"""The README's schema tables are the catalogue's: a change to one without the other fails."""

from __future__ import annotations

from collector.schema.fields import markdown_table, markdown_tag_meanings_table, markdown_tags_table
from collector.vendors import quanta
from tests.conftest import ROOT

BEGIN = "<!-- schema-table: generated from collector/schema/fields.py; tests hold the two together -->"
END = "<!-- /schema-table -->"


def generated() -> str:
    return (
        f"{BEGIN}\n\n{markdown_tag_meanings_table()}\n\n{markdown_tags_table()}\n\n"
        f"{markdown_table(quanta())}\n\n{END}"
    )


def test_readme_schema_table_matches_the_catalogue() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:end] == generated(), (
        "README schema table is stale: run `.venv/bin/python -c 'import tests.test_docs as t; t.rewrite()'`"
    )


def rewrite() -> None:
    path = ROOT / "README.md"
    readme = path.read_text()
    start = readme.index(BEGIN)
    end = readme.index(END) + len(END) if END in readme else len(readme.rstrip("\n"))
    path.write_text(readme[:start] + generated() + readme[end:].rstrip("\n") + "\n")
