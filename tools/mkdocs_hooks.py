"""mkdocs hooks (mkdocs.yml ``hooks:``): what the site takes from outside ``docs/``.

- The CLI reference: the marker line of ``docs/cli.md`` becomes the ``--help`` of
  ``dataprune`` and of each of its commands, formatted from the argparse parsers at build
  time, so the reference cannot drift from the code.
- The API reference: the marker line of ``docs/api.md`` becomes one mkdocstrings entry per
  name of ``dataprune.__all__`` (the one list of the public surface), each rendered from
  the module that defines it (griffe would take ``dataprune.select``, a function, for the
  module of the same name).
- The measured results: the Markdown and PNG files under ``benchmarks/results/`` are
  published at the same path on the site, and the guides' links to them
  (``../benchmarks/results/...``, which GitHub resolves from ``docs/``) are pointed there.

Nothing is downloaded; the package is imported from this checkout's ``src/``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- dataprune --help: generated at build time -->"
API_MARKER = "<!-- dataprune.__all__: generated at build time -->"
RESULTS = "benchmarks/results"
HELP_COLUMNS = "100"  # argparse wraps to $COLUMNS; fixed so every build prints the same page


def on_files(files: Files, config) -> Files:
    """Publish ``benchmarks/results/**/*.{md,png}`` beside the guides (not in the nav)."""
    for path in sorted((ROOT / RESULTS).rglob("*")):
        if path.suffix in (".md", ".png") and path.is_file():
            f = File(path.relative_to(ROOT).as_posix(), src_dir=str(ROOT), dest_dir=config["site_dir"],
                     use_directory_urls=config["use_directory_urls"], inclusion=InclusionLevel.NOT_IN_NAV)
            files.append(f)
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Point ``../benchmarks/results/`` links at the published copies; fill in the CLI help."""
    markdown = markdown.replace(f"](../{RESULTS}/", f"]({RESULTS}/")
    if page.file.src_uri == "cli.md":
        if CLI_MARKER not in markdown:
            raise ValueError(f"docs/cli.md lost its marker line {CLI_MARKER!r}")
        markdown = markdown.replace(CLI_MARKER, cli_help_markdown())
    if page.file.src_uri == "api.md":
        if API_MARKER not in markdown:
            raise ValueError(f"docs/api.md lost its marker line {API_MARKER!r}")
        markdown = markdown.replace(API_MARKER, api_markdown())
    return markdown


def _import_checkout_package():
    """``dataprune`` from this checkout's ``src/`` (not another checkout's editable install)."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    import dataprune
    return dataprune


def api_markdown() -> str:
    """One ``::: path`` entry per public name, in ``__all__`` order."""
    dp = _import_checkout_package()
    entries = []
    for name in dp.__all__:
        obj = getattr(dp, name)
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        defined = module and qualname and getattr(sys.modules.get(module), qualname, None) is obj
        path = f"{module}.{qualname}" if defined else f"dataprune.{name}"
        entries.append(f"::: {path}\n    options:\n      heading_level: 2\n      show_root_full_path: false\n")
    return "\n".join(entries)


def cli_help_markdown() -> str:
    """``dataprune --help`` and each command's ``--help``, one section per command."""
    _import_checkout_package()
    from dataprune.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands = {id(p): p for p in sub.choices.values()}  # an alias maps to its command's parser
    sections = [("dataprune", parser)] + [(p.prog, p) for p in commands.values()]
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        return "\n".join(f"## `{prog}`\n\n```text\n{p.format_help().rstrip()}\n```\n"
                         for prog, p in sections)
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
