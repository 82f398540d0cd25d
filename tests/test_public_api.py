"""The public API: one surface listed in ``dataprune.__all__`` and documented in the package
docstring, the ``dataprune.methods`` subpackage (not a function), typed method parameters,
the store path ``out`` in the same place everywhere, library errors in library terms (the
CLI prints flags), and a deprecation path for every name that moved."""
from __future__ import annotations

import ast
import inspect
import re
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch

import dataprune as dp
from dataprune.cli.terms import cli_terms
from dataprune.errors import DataPruneError

SRC = Path(dp.__file__).parent


# --- the surface -----------------------------------------------------------------------

def test_all_is_the_public_surface_and_the_docstring_names_each():
    assert len(dp.__all__) == len(set(dp.__all__))
    public = {n for n, v in vars(dp).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(dp.__all__) - {"__version__"}
    for name in dp.__all__:
        assert name == "__version__" or re.search(rf"\b{name}\b", dp.__doc__), name


def test_methods_is_the_subpackage_and_calling_it_is_deprecated():
    import dataprune.methods as m
    assert dp.methods is m is sys.modules["dataprune.methods"] and isinstance(m, types.ModuleType)
    assert callable(m.dyn_unc) and callable(m.get_method)  # its members
    with pytest.warns(DeprecationWarning, match=r"dataprune\.methods\(\) is deprecated; use dataprune\.list_methods\(\)"):
        assert dp.methods() == dp.list_methods()


def test_list_and_get_methods():
    names = dp.list_methods()
    assert names == sorted(names) and {"dyn-unc", "dual", "el2n", "random"} <= set(names)
    m = dp.get_method("dyn-unc")
    assert isinstance(m, dp.Method) and m.name == "dyn-unc" and list(m.parameters) == ["window", "epochs", "semantics"]
    with pytest.raises(DataPruneError, match=r"unknown method 'nope'; expected one of aum, "):
        dp.get_method("nope")


@pytest.mark.parametrize("name", ["dyn_unc", "dual"])
def test_methods_left_the_top_level_with_a_warning(name):
    from dataprune import methods
    with pytest.warns(DeprecationWarning, match=rf"dataprune\.{name} is deprecated; use dataprune\.methods\.{name}"):
        assert getattr(dp, name) is getattr(methods, name)
    with pytest.warns(DeprecationWarning):
        exec(f"from dataprune import {name}", {})
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        dp.nope  # noqa: B018


def test_py_typed_ships():
    assert (SRC / "py.typed").is_file()
    assert 'dataprune = ["py.typed"]' in (SRC.parents[1] / "pyproject.toml").read_text()


# --- method parameters -------------------------------------------------------------------

@pytest.mark.parametrize("name", dp.list_methods())
def test_method_parameters_are_typed_keywords_with_defaults(name):
    """What an IDE shows and completes: fn(dynamics, *, param: type = default, ...)."""
    method = dp.get_method(name)
    first, *rest = inspect.signature(method.fn).parameters.values()
    assert first.kind is first.POSITIONAL_OR_KEYWORD
    assert [p.name for p in rest] == list(method.parameters)
    for p in rest:
        assert p.kind is p.KEYWORD_ONLY and p.annotation is not p.empty and p.default is not p.empty, p


@pytest.mark.parametrize("name", dp.list_methods())
def test_unknown_parameter_is_one_line_naming_it_and_the_accepted_ones(name):
    accepted = ", ".join(dp.get_method(name).parameters) or "no parameters"
    with pytest.raises(DataPruneError) as e:
        dp.score(name, {}, nope=1)
    assert str(e.value) == f"method {name!r} has no parameter 'nope'; it takes {accepted}"


# --- the store path ----------------------------------------------------------------------

def test_store_path_is_out_second_in_recorder_and_lightning(tmp_path):
    pytest.importorskip("lightning")
    from dataprune.integrations.lightning import RecordDynamics
    rec = inspect.signature(dp.Recorder).parameters
    cb = inspect.signature(RecordDynamics).parameters
    assert list(rec)[:3] == list(cb)[:3] == ["num_samples", "out", "num_classes"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for made in (RecordDynamics(out=tmp_path), RecordDynamics(10, tmp_path, 3)):
            assert made.out == tmp_path
    with pytest.raises(DataPruneError, match="RecordDynamics needs out=, the store directory"):
        RecordDynamics(10)


@pytest.mark.parametrize("args, kwargs, num_samples, num_classes", [
    ((), {}, None, None), ((10, 3), {}, 10, 3), ((), {"num_classes": 3}, None, 3)])
def test_lightning_store_path_first_still_works_with_a_warning(tmp_path, args, kwargs, num_samples, num_classes):
    pytest.importorskip("lightning")
    from dataprune.integrations.lightning import RecordDynamics
    with pytest.warns(DeprecationWarning, match=r"RecordDynamics\(out, num_samples, num_classes\) is deprecated"):
        cb = RecordDynamics(tmp_path, *args, **kwargs)
    assert (cb.out, cb.num_samples, cb.num_classes) == (tmp_path, num_samples, num_classes)


def test_transformers_store_path_is_out_and_dynamics_out_warns(tmp_path):
    pytest.importorskip("transformers")
    from _transformers_app import make_trainer
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert make_trainer(tmp_path).dynamics_out == tmp_path / "dynamics"
    from dataprune.integrations.transformers import RecordDynamicsTrainer
    trainer = make_trainer(tmp_path)
    with pytest.warns(DeprecationWarning, match=r"dynamics_out= is deprecated; the store path is out="):
        old = RecordDynamicsTrainer(model=trainer.model, args=trainer.args, train_dataset=trainer.train_dataset,
                                    dynamics_out=tmp_path / "old")
    assert old.dynamics_out == tmp_path / "old"
    with pytest.raises(DataPruneError, match="RecordDynamicsTrainer needs out="):
        RecordDynamicsTrainer(model=trainer.model, args=trainer.args, train_dataset=trainer.train_dataset)


# --- errors in library terms -------------------------------------------------------------

#: the command line's engines (their settings are its flags)
FLAG_SPEAKERS = ("cli", "train", "bench")
ERRORS = {"DataPruneError", "StoreError", "MissingSignalError"}


def _raised_texts(path: Path):
    """(line, text) of the string parts of each `raise <library error>(...)` in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and getattr(node.exc.func, "id", None) in ERRORS:
            parts = [c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            yield node.lineno, "".join(parts)


def test_library_errors_name_parameters_not_flags():
    library = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in FLAG_SPEAKERS
               or p.relative_to(SRC) == Path("train/prune_at.py")]
    assert len(library) > 20
    flags = [f"{p.relative_to(SRC)}:{line}: {text}" for p in library for line, text in _raised_texts(p)
             if re.search(r"(^|[\s(`'])--[a-z]", text)]
    assert not flags, "\n".join(flags)


@pytest.mark.parametrize("library, cli", [
    ("keep.txt already exists; pass force=True to overwrite it", "keep.txt already exists; pass --force to overwrite it"),
    ("force=True: refusing to delete d", "--force: refusing to delete d"),
    ("f.npy not found: ...; or pass features=FILE.npy", "f.npy not found: ...; or pass --features FILE.npy"),
    ("or pass logits=FILE.npy", "or pass --logits FILE.npy"),
    ("record them in the scoring run: Recorder(signals=[..., 'margin', 'el2n'])",
     "record them in the scoring run: `dataprune score --signals` with margin, el2n"),
    ("import_official needs the run's file list (file_list=FILE: labels, and C = max label + 1) or num_classes=C;",
     "import-official needs the run's file list (--file-list FILE: labels, and C = max label + 1) or --num-classes C;"),
    ("prune_at=0 with method 'el2n'; it needs recorded epochs, expected prune_at >= 1",
     "--prune-at 0 with method 'el2n'; it needs recorded epochs, expected --prune-at >= 1"),
    ("raise prune_at or use record_every=0.5", "raise --prune-at or use --record-every 0.5"),
    ("with record_every < 1; expected record_every=1", "with record_every < 1; expected --record-every 1"),
    ("record_every=0.3; expected 1/m of an epoch", "record_every=0.3; expected 1/m of an epoch"),  # a value: kept
    ("for num_classes=10: the model has 12 outputs", "for num_classes=10: the model has 12 outputs"),
    ("the model diverged (try a lower learning rate, or pass nan_policy='omit' to leave those samples unobserved)",
     "the model diverged (try a lower learning rate with --lr, or, with dataprune.Recorder in your own loop, pass "
     "nan_policy='omit' to leave those samples unobserved)"),
])
def test_cli_prints_library_hints_as_flags(library, cli):
    assert cli_terms(library) == cli


def test_cli_missing_signal_names_the_flag(tmp_path, capsys):
    from dataprune.cli import main
    rec = dp.Recorder(4, tmp_path / "s", 2, signals=["prob"])
    rec.update(torch.arange(4), torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    rec.end_epoch()
    rec.close()
    with pytest.raises(dp.MissingSignalError, match=r"Recorder\(signals=\[\.\.\., 'margin'\]\)$"):
        dp.score("aum", dp.Dynamics.open(tmp_path / "s"))
    assert main(["select", str(tmp_path / "s"), "--method", "aum", "--prune-ratio", "0.5",
                 "--out", str(tmp_path / "k.txt")]) == 2
    err = capsys.readouterr().err
    assert "`dataprune score --signals` with margin" in err and "Recorder(" not in err, err
