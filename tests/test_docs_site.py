"""The documentation site builds offline with ``mkdocs build --strict`` (a warning - a broken
link or anchor, a docstring griffe cannot parse, a missing README section - fails it), its
API reference documents every name of ``dataprune.__all__``, its CLI reference holds every
command's ``--help``, and its nav lists every page under ``docs/``."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dataprune
from conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers")  # the `docs` extra


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [m for m in TOOLS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs tools are not installed (no {', '.join(missing)}): pip install '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**subprocess_env(), "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


def test_api_reference_documents_every_public_name(site):
    html = (site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'<h2 id="(dataprune\.[\w.]+)"', html))
    for name in dataprune.__all__:
        assert any(a.rsplit(".", 1)[-1] == name for a in anchors), f"{name} is not in the API reference"


def test_cli_reference_holds_every_commands_help(site):
    import argparse
    from dataprune.cli import build_parser
    html = (site / "cli" / "index.html").read_text()
    assert "usage: dataprune [-h]" in html
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for parser in sub.choices.values():
        assert f"usage: {parser.prog} " in html, parser.prog


def test_no_external_fetch_at_build_or_read_time(site):
    for page in site.rglob("*.html"):
        assert "fonts.googleapis" not in page.read_text(), page


def test_nav_lists_every_docs_page():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from (pages(value) if isinstance(value, list) else [value])

    listed = list(pages(config["nav"]))
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))
