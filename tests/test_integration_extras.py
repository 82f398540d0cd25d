"""Installing the integrations: one ``[all]`` extra holding every other extra but the tools
(``dev``, ``docs``), the README's install paragraph naming each extra with quoted brackets,
a one-line error naming the extra when a framework is missing, and docs examples that do not
write into each other's folders."""
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_all_extra_is_every_extra_but_the_tools():
    ex = extras()
    others = {req for name, reqs in ex.items() if name not in ("all", "dev", "docs") for req in reqs}
    assert sorted(ex["all"]) == sorted(others)


def test_readme_install_paragraph_names_every_extra_quoted():
    readme = (ROOT / "README.md").read_text()
    (paragraph,) = [p for p in readme.split("\n\n") if "pip install ." in p]
    quoted = set(re.findall(r"'\.\[(\w+)\]'", paragraph))
    assert quoted == set(extras()) - {"dev"}
    assert not re.search(r"[^'][.\w]+\[\w+\][^']", paragraph.replace("[integrations]", ""))


@pytest.mark.parametrize("module, framework, extra", [
    ("lightning", "lightning", "lightning"),
    ("lightning", "lightning.pytorch", "lightning"),
    ("transformers", "transformers", "transformers"),
    ("transformers", "accelerate", "transformers"),
])
def test_missing_framework_names_the_extra(monkeypatch, module, framework, extra):
    for name in [m for m in sys.modules if m.startswith(framework + ".")] + [framework]:
        monkeypatch.setitem(sys.modules, name, None)  # `import framework` now fails
    monkeypatch.delitem(sys.modules, f"dataprune.integrations.{module}", raising=False)
    with pytest.raises(ModuleNotFoundError) as err:
        importlib.import_module(f"dataprune.integrations.{module}")
    msg = str(err.value)
    assert "\n" not in msg and f"pip install 'dataprune[{extra}]'" in msg and framework.split(".")[0] in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_docs_examples_write_to_distinct_folders():
    doc = (ROOT / "docs" / "integrations.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    outs = [m for b in blocks for m in re.findall(r"[\"']((?:runs?|pruned)/[^\"']*)[\"']", b)]
    roots = [Path(o).parent for o in outs if o.endswith("dynamics")]
    assert len(roots) >= 2 and len(set(roots)) == len(roots), roots
