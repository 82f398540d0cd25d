"""Per-sample score export (`dataprune scores`, dp.scores_table / dp.write_scores): columns
equal dp.score, ranks agree with dp.select, CSV and Parquet round-trips, bad input."""
import csv
import math

import numpy as np
import pytest

import dataprune as dp
from dataprune.cli import main
from dataprune.interop import FILE_LIST, format_file_list
from dataprune.select import keep_order
from helpers_methods import write_store

METHODS = ["dyn-unc", "el2n", "forgetting", "aum"]
N, K = 60, 6


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(3)
    prob = rng.random((K, N))
    prob[rng.random((K, N)) < 0.15] = np.nan
    prob[:, :3] = np.nan                            # never observed: dyn-unc NaN
    correct = rng.integers(0, 2, (K, N)).astype(np.int8)  # forgetting: integer scores, many ties
    el2n = np.round(rng.random((K, N)), 1)          # el2n: ties too
    margin = rng.normal(size=(K, N))
    labels = np.arange(N) % 4
    return write_store(tmp_path / "store", {"prob": prob, "correct": correct, "el2n": el2n,
                                            "margin": margin}, labels, 4)


def slow_rank_bounds(s, nan_policy):
    """Per sample, the lowest and highest rank the score order allows (ties: any order)."""
    fill = -math.inf if nan_policy == "prune" else math.inf
    v = [fill if math.isnan(x) else x for x in s.tolist()]
    better = [sum(1 for w in v if w > x) for x in v]
    equal = [sum(1 for w in v if w == x) for x in v]
    return np.array(better) + 1, np.array(better) + np.array(equal)


def test_keep_order_hand_case():
    # 0.9, 0.7, 0.5, 0.1 (tie-breaking is select's business; the export only reuses it)
    assert keep_order(np.array([0.1, 0.9, 0.5, 0.7])).tolist() == [1, 3, 2, 0]
    assert keep_order(np.array([np.nan, 1.0]), nan_policy="prune").tolist() == [1, 0]
    assert keep_order(np.array([np.nan, 1.0]), nan_policy="keep").tolist() == [0, 1]


@pytest.mark.parametrize("nan_policy", ["prune", "keep"])
def test_table_matches_score_and_select(store, nan_policy):
    params = {"dyn-unc": {"window": 2}, "el2n": {"epoch": 1}}
    table = dp.scores_table(store, METHODS, params=params, nan_policy=nan_policy)
    assert list(table) == ["index", "label"] + [c for m in METHODS for c in (m, f"{m}_rank")]
    assert table["index"].tolist() == list(range(N))
    assert table["label"].tolist() == np.asarray(store.labels).tolist()
    for m in METHODS:
        s = dp.score(m, store, **params.get(m, {}))
        np.testing.assert_array_equal(table[m], s)  # NaN where dp.score is NaN
        rank = table[f"{m}_rank"]
        assert rank.dtype == np.int64 and sorted(rank.tolist()) == list(range(1, N + 1))
        lo, hi = slow_rank_bounds(s, nan_policy)
        assert ((lo <= rank) & (rank <= hi)).all()  # higher score, better rank
        for kept in range(1, N + 1):  # select keeps exactly the top ranks, at every size
            keep = dp.select(s, (N - kept) / N, nan_policy=nan_policy)
            assert len(keep) == kept
            np.testing.assert_array_equal(keep, np.flatnonzero(rank <= kept))
    nan = int(np.isnan(table["dyn-unc"]).sum())
    assert np.isnan(table["dyn-unc"][:3]).all() and 3 <= nan < N  # NaN ranks last or first
    first = N - nan + 1 if nan_policy == "prune" else 1
    assert set(table["dyn-unc_rank"][np.isnan(table["dyn-unc"])]) == set(range(first, first + nan))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_cli_csv_round_trip_with_paths(store, tmp_path, capsys):
    paths = [f"class{y}/img {i},x.png" for i, y in enumerate(np.asarray(store.labels))]  # space, comma
    (store.path / FILE_LIST).write_text(format_file_list(paths, np.asarray(store.labels)))
    out = tmp_path / "out" / "scores.csv"
    assert main(["scores", str(store.path), "--methods", "dyn-unc,el2n,forgetting", "--window", "2",
                 "--out", str(out)]) == 0
    assert "-> " in capsys.readouterr().out
    header, rows = read_csv(out)
    want = dp.scores_table(store, ["dyn-unc", "el2n", "forgetting"], params={"dyn-unc": {"window": 2}})
    assert header == list(want) and header[:3] == ["index", "label", "path"] and len(rows) == N
    cols = list(zip(*rows))
    for name, col in zip(header, cols):
        if name == "path":
            assert list(col) == paths
        elif name in ("dyn-unc", "el2n", "forgetting"):
            got = np.array([float(c) if c else np.nan for c in col])
            np.testing.assert_array_equal(got, want[name])  # shortest repr: exact round trip
        else:
            assert [int(c) for c in col] == want[name].tolist()
    assert [c for c in cols[header.index("dyn-unc")][:3]] == ["", "", ""]


def test_parquet_round_trip(store, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "scores.parquet"
    table = dp.scores_table(store, ["dyn-unc", "aum"], params={"dyn-unc": {"window": 3}})
    assert dp.write_scores(out, table) == out
    got = pq.read_table(out).to_pydict()
    assert list(got) == list(table)
    for name, col in table.items():
        np.testing.assert_array_equal(np.asarray(got[name]), col)
    assert main(["scores", str(store.path), "--methods", "aum", "--out", str(out)]) == 2  # exists
    assert main(["scores", str(store.path), "--methods", "aum", "--out", str(out), "--force"]) == 0
    assert list(pq.read_table(out).column_names) == ["index", "label", "aum", "aum_rank"]


def test_parquet_without_pyarrow(store, tmp_path, monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    out = tmp_path / "s.parquet"
    assert main(["scores", str(store.path), "--methods", "aum", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs pyarrow" in err and len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--methods", "dyn-unc,nope"], "unknown method 'nope'"),
    (["--methods", "grand"], "needs signal(s) ['grand']"),
    (["--methods", ","], "expected comma-separated method names"),
    (["--methods", "el2n,el2n"], "given twice"),
    (["--methods", "forgetting", "--window", "3"], "--window does not apply to any of the methods"),
    (["--methods", "dyn-unc", "--window", "9"], "window"),
    (["--methods", "dyn-unc", "--window", "2", "--nan-policy", "raise"], "NaN"),
])
def test_bad_input_one_line_nothing_written(store, tmp_path, capsys, args, message):
    out = tmp_path / "s.csv"
    assert main(["scores", str(store.path), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_bad_paths(store, tmp_path, capsys):
    assert main(["scores", str(store.path), "--methods", "aum", "--out", str(tmp_path / "s.xlsx")]) == 2
    assert "expected .csv or .parquet" in capsys.readouterr().err
    out = tmp_path / "s.csv"
    out.write_text("mine\n")
    assert main(["scores", str(store.path), "--methods", "aum", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert main(["scores", str(tmp_path / "missing"), "--methods", "aum", "--out", str(tmp_path / "t.csv")]) == 2
    with pytest.raises(dp.DataPruneError, match="params given for"):
        dp.scores_table(store, ["aum"], params={"el2n": {"epoch": 1}})
    with pytest.raises(dp.DataPruneError, match="no methods"):
        dp.scores_table(store, [])


def test_keep_file_functions_exported(tmp_path):
    path = dp.write_keep(tmp_path / "k.txt", np.array([1, 4, 7]), {"num_samples": 10})
    assert dp.read_keep(path, 10).tolist() == [1, 4, 7]
    with pytest.raises(dp.DataPruneError):
        dp.read_keep(path, 5)
