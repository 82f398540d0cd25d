"""One selection path: the keep files and manifests of ``dataprune select``, of the bench
engine and of ``train --prune-at`` (its ``_prune`` step) stay byte-identical.

The inputs are stores written from fixed NumPy arrays (no training, so the bytes do not
depend on the machine or the torch version). :data:`GOLDEN` holds, per case, the sha256 of
the keep file and of its manifest, recorded on the code before the selection path was
unified (commit ddae368, main, issue 19) by running this file's :func:`outputs` and
printing it (``python -m pytest tests/test_selection_path.py -k golden -s`` prints the
current ones). Only fields that legitimately vary between two runs are taken out of the
manifests first: the ``created`` timestamp, ``selection_seconds`` (a timing) and the
temporary folder's absolute path (replaced by ``<tmp>``); the rest, keys and values, is
hashed as written (sorted keys, indent 2).

The same-run checks below compare the one selection function against the public
``select``, ``select_stratified``, ``select_beta`` and ``select_two_sided``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dataprune.cli import main
from helpers_methods import write_store

N, C, K = 60, 3, 6
LABELS = np.arange(N) % C


def _signals(seed: int, noisy: int = 0, unseen: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """(K, N) prob, correct, margin; ``noisy`` samples get prob < 1/C after epoch 0 (likely
    mislabeled), ``unseen`` samples are never observed."""
    rng = np.random.default_rng(seed)
    prob = rng.uniform(0.4, 1.0, size=(K, N))
    prob[:, ::7] = np.round(prob[:, ::7], 1)  # some equal scores: ties
    prob[1:, :noisy] = rng.uniform(0.0, 0.2, size=(K - 1, noisy))
    margin = rng.uniform(-1.0, 1.0, size=(K, N))
    correct = (prob > 0.6).astype(np.int8)
    for i in unseen:
        prob[:, i], margin[:, i], correct[:, i] = np.nan, np.nan, -1
    return {"prob": prob, "correct": correct, "margin": margin}


def _digests(keep: Path, tmp: Path) -> tuple[str, str]:
    """sha256 of keep file ``keep`` and of its manifest, the varying fields taken out."""
    info = json.loads(keep.with_suffix(".json").read_text())
    info.pop("created", None)
    info.pop("selection_seconds", None)
    text = json.dumps(info, indent=2, sort_keys=True).replace(str(tmp), "<tmp>")
    return hashlib.sha256(keep.read_bytes()).hexdigest(), hashlib.sha256(text.encode()).hexdigest()


CLI_CASES = {
    "cli-topk": ["--method", "dyn-unc", "--prune-ratio", "0.3"],
    "cli-topk-ties-seed": ["--method", "forgetting", "--prune-ratio", "0.4", "--seed", "3"],
    "cli-topk-keep-balanced": ["--method", "dyn-unc", "--keep", "25", "--class-balanced", "--window", "3"],
    "cli-topk-npy": ["--method", "aum", "--prune-ratio", "0.5", "--out-suffix", ".npy"],
    "cli-ccs": ["--method", "dyn-unc", "--prune-ratio", "0.5", "--stratified", "--strata", "5",
                "--stratified-seed", "2"],
    "cli-ccs-beta-balanced": ["--method", "dyn-unc", "--prune-ratio", "0.5", "--stratified", "--beta", "0.1",
                              "--beta-by", "aum", "--class-balanced"],
    "cli-ccs-keep": ["--method", "forgetting", "--keep", "17", "--stratified"],
    "cli-beta": ["--method", "dual", "--prune-ratio", "0.6", "--beta-sampling", "--beta-seed", "1",
                 "--beta-c", "3", "--epochs", "5"],
    "cli-beta-keep": ["--method", "dyn-unc", "--keep", "20", "--beta-sampling"],
    "cli-nan-prune": ["--method", "dyn-unc", "--prune-ratio", "0.3", "--nan-policy", "prune", "@nan"],
    "cli-nan-keep-ccs": ["--method", "dyn-unc", "--prune-ratio", "0.3", "--nan-policy", "keep", "--stratified",
                         "@nan"],
    "cli-nan-keep-beta": ["--method", "dyn-unc", "--prune-ratio", "0.7", "--nan-policy", "keep",
                          "--beta-sampling", "@nan"],
}

BENCH_SELECTORS = (("dyn-unc", "dyn-unc", (("window", 3),)), ("forgetting", "forgetting", ()),
                   ("dual+beta", "dual", (("window", 3),)), ("aum+ccs", "aum", ()),
                   ("dyn-unc+ccs", "dyn-unc", (("window", 4),)))

ONE_RUN_CASES = {  # name: (store, method, prune_at, prune ratio, mislabeled, training seed)
    "one-run-dyn-unc": ("clean", "dyn-unc", K, 0.3, "off", 0),
    "one-run-forgetting": ("clean", "forgetting", K, 0.5, "off", 0),
    "one-run-random-at-0": ("clean", "random", 0, 0.4, "off", 5),
    "one-run-two-sided": ("noisy", "dyn-unc", K, 0.2, "auto", 0),
    "one-run-two-sided-gate-shut": ("clean", "dyn-unc", K, 0.25, "auto", 0),
}


def _cli_outputs(stores: dict[str, Path], tmp: Path) -> dict[str, tuple[str, str]]:
    out = {}
    for name, args in CLI_CASES.items():
        args = list(args)
        store = stores["nan"] if "@nan" in args else stores["clean"]
        args = [a for a in args if a != "@nan"]
        suffix = ".txt"
        if "--out-suffix" in args:
            i = args.index("--out-suffix")
            suffix = args[i + 1]
            del args[i:i + 2]
        keep = tmp / "cli" / f"{name}{suffix}"
        keep.parent.mkdir(exist_ok=True)
        assert main(["select", str(store), *args, "--out", str(keep), "--quiet"]) == 0, name
        out[name] = _digests(keep, tmp)
    return out


def _bench_outputs(stores: dict[str, Path], tmp: Path) -> dict[str, tuple[str, str]]:
    from dataprune.bench.engine import Bench
    from dataprune.bench.plan import BenchConfig, Scorer, Selector
    from dataprune.bench.selection import parse_spec
    out = {}
    for balanced in (False, True):
        folder = tmp / f"bench-{'balanced' if balanced else 'plain'}"
        for run, store in (("s-run0", "clean"), ("s-run1", "nan")):
            write_store(folder / "score" / run / "dynamics", _signals(*STORE_SEEDS[store]), LABELS, C)
        sels = [Selector(label, method, "s", params=params, selection=parse_spec(label)[1])
                for label, method, params in BENCH_SELECTORS if not (balanced and label.endswith("+beta"))]
        sels.append(Selector("dyn-unc-run1", "dyn-unc", "s", params=(("window", 3),), runs=(1,)))
        config = BenchConfig(dataset="idx", scorers=[Scorer("s", "mlp", K, runs=2)], selectors=sels,
                             prune_ratios=[0.3, 0.7, 0.9], class_balanced=balanced)
        assert Bench(folder, config).run_selection() == {}
        for keep in sorted((folder / "keep" / "s").glob("*.txt")):
            out[f"bench-{'balanced' if balanced else 'plain'}/{keep.stem}"] = _digests(keep, tmp)
    return out


def _one_run_outputs(stores: dict[str, Path], tmp: Path) -> dict[str, tuple[str, str]]:
    from dataprune.train.one_run import _prune
    from dataprune.train.plan import PrunePlan
    out = {}
    for name, (store, method, prune_at, ratio, mislabeled, seed) in ONE_RUN_CASES.items():
        run = tmp / name
        write_store(run / "dynamics", _signals(*STORE_SEEDS[store]), LABELS, C)
        plan = PrunePlan(prune_at=prune_at, method=method, prune_ratio=ratio,
                         mislabeled=mislabeled).resolved(10, seed)
        data = SimpleNamespace(train_y=LABELS, num_classes=C, name="idx")
        _prune(run, plan, data, None)
        out[name] = _digests(run / "keep.txt", tmp)
    return out


#: store name -> arguments of _signals
STORE_SEEDS = {"clean": (0,), "noisy": (2, 12), "nan": (3, 0, (5, 17, 40))}


@pytest.fixture
def stores(tmp_path) -> dict[str, Path]:
    return {name: write_store(tmp_path / "stores" / name, _signals(*args), LABELS, C).path
            for name, args in STORE_SEEDS.items()}


def outputs(stores: dict[str, Path], tmp: Path) -> dict[str, tuple[str, str]]:
    """Digests of every case's keep file and manifest."""
    return {**_cli_outputs(stores, tmp), **_bench_outputs(stores, tmp), **_one_run_outputs(stores, tmp)}


#: case -> (sha256 of the keep file, sha256 of its manifest), recorded on commit ddae368
GOLDEN: dict[str, tuple[str, str]] = {
    "cli-topk": ("1773294bb4768e114a3c1bd0bdfa58ea3fa41cbc823fb8a9b8a34c346af12cd3",
        "fecf8b05b46e3982c7807d9dc2537bd338491c660aacafcfefd82fee65928121"),
    "cli-topk-ties-seed": ("668f61d60bc40282a7b11d81c87d39bc6df185b7c761f428ae707ce33087c36e",
        "a9783dc43099689de0e532b29d11d27d0e9cdc0f32056ce49a3bc830233de53d"),
    "cli-topk-keep-balanced": ("90845120611c467ef0dd81b319e87d58c23ef7306f8ce54084d9053348fb4e8c",
        "af08006fa6a57fdee84a3d02dc9276d39aff002107c310acd2165fcf9f92c92c"),
    "cli-topk-npy": ("f18ee3fcc19cb56ce833a28f472d2a9f137c5c959d83689f9c7a1a7f51015b0c",
        "6888a1923c9708438637509fb14c3101b792d2ebc191fea0a69e8c9fedaf7ec2"),
    "cli-ccs": ("0f94971b6e453338374b509efb9a43d3e852a7b4c88b50e6249eda71ffb8a031",
        "f086b4ff1d3b0611df7fb4c3a7a81e203a740b7e161fce56e6a6021296e59815"),
    "cli-ccs-beta-balanced": ("e6567d526bb8ee11356b334db9ecbbc5a096a699f5be87fe79369649f94ba9c2",
        "00d2e684e33ce63d840ed8836a981bcdcbce409af4025ae9b9f69459fbc50212"),
    "cli-ccs-keep": ("11972590babade4cbcc37bdabf40c3232efec59cc4dee1a596abeac670fbfcbc",
        "5993e94656b564889e1149d26dfcf8596ef663968f0c07a87e4f0f98098d67ff"),
    "cli-beta": ("aebd4a4fa127f2ea08fe92f493cde21afc4814b7e1c496c08a38756d9e1b9674",
        "697c5f342511f901269cc0e7392abe179daa6cc733d06aa02970a9a193f6afb4"),
    "cli-beta-keep": ("fe20fb633613ba44b468fc0073428b4c8058de2b01268e6c987340691d4a1ad5",
        "0057de81f03cfb954b094741ec4dd5cda2f6584978241f4c4f708b393b5682d0"),
    "cli-nan-prune": ("cf865f2971e129d5c81e012298a5c5bfe95d1bb0165e0ba35dbf7a5c39ce47c3",
        "9295fa76a68e5c46c5159133460cceed4783c19b646ba424ed935f827e190241"),
    "cli-nan-keep-ccs": ("c7bfdc6d5f58dd556aeea2e81025e6ec9121a5ef34528a44ea58c4d2e3c27112",
        "6e95cb62c3a04dd4bd412062b16ca7d21b6ae833c27886063935b1ede6e3bed0"),
    "cli-nan-keep-beta": ("9e422eaf07dad13d8ed667fe75dfc0b15d284f5c95d0cb1eb714890567b4c803",
        "6a5334e345ea2247e54a99a49e6b7410936df812e0378995e71dac327d13f36a"),
    "bench-plain/aum+ccs-r0.3": ("0930347cbf74a1921d6d4ad96eb4e2d28b44e25313c0ad0aa9bbfb39807962d6",
        "665dff1807857e073b36ad798d26ea5856ace66341290216096003c2b103c4e8"),
    "bench-plain/aum+ccs-r0.7": ("46a5e5d10ca24f3b8e8b780eca5bf8c169a1224d172833c3fa83186a990c18a6",
        "518518caad78906cae762d4aa46d2e68c0322040922b0a6cb3d3017f509fc7d7"),
    "bench-plain/aum+ccs-r0.9": ("3a05038822205469cb3e17438d43510a91f37db9490bbdb46c4218012f0f9cf1",
        "9830dc934516b20c804f86bbf28307ce0addff1e8c5e6d97ff4f45099125eead"),
    "bench-plain/dual+beta-r0.3": ("2b9d9a209852609beb0554fa71a335cdc082e577fa9c246fa443df5377c76f4c",
        "75a1a10502363a2c96a49b7e1283a461adb247d3d2eccd494d5bdd38f81978fa"),
    "bench-plain/dual+beta-r0.7": ("ac0a7beefcbe8b00c1200eed7c3df6cfd7513231d6d1f4b908027e70be7c69f7",
        "b32ff0d456b873dc9f06ee6ce30ba64505741b9cbe21f533cf9dd350ad8f9d87"),
    "bench-plain/dual+beta-r0.9": ("b104cc83b72bcbbd01d6836b89c6e47a53e2e09ab29a8039d24bfd72a97a658c",
        "db1f516002a93739d635834c543d54a3417a6f99a435cbea4bbc099cf62fe381"),
    "bench-plain/dyn-unc+ccs-r0.3": ("7972654645a0f4c47a0c60b49dae1ab63622ead7d94c3ca49aa6990e027adfdb",
        "5b16ab7674191e2120c2f78472a5e96c03e1a860a97f488bb05452e9a6900547"),
    "bench-plain/dyn-unc+ccs-r0.7": ("317c8b006373ca4cd8bdf5d8b3463eab95547fb1a0c0e7f25c6a4b5579e17c9e",
        "325e1ddd26a4583988cddd5047b60537ed3d0764602e4a5972aa4190cfba76b7"),
    "bench-plain/dyn-unc+ccs-r0.9": ("97e11331b9ce2c944c35c43b3570cae8d3fd461ed45a97d0605291c6113de759",
        "6a944bf63633e6fe635c5dad9aa240f4e0e4d96b13e76291b683233d3e4c243f"),
    "bench-plain/dyn-unc-r0.3": ("8706afbf81b5cbf4469227049b2a462c17db42edae97af871f4d2323b3ec10ca",
        "38e77700e2b4303b7c12d7310ac9ae0ad33a186f1b98dded492d3875df469ba5"),
    "bench-plain/dyn-unc-r0.7": ("8b389a5961aa6ca6c11d03edd968ea5268913b15f15c469b5b3c4a3016505159",
        "a391a28fa4b8cd2c8374ed6952e1da5bd9dee56691e3c522c86b26b482491208"),
    "bench-plain/dyn-unc-r0.9": ("7d35eccca9cb4fd55ef3e644be1676662b84c9915b17165972eb91de5765b6d3",
        "f165d3514e1605a891596737cf8eb6f81a77b099730d115de1cb21ee05ae1ff6"),
    "bench-plain/dyn-unc-run1-r0.3": ("a52df9c1058835ba7c28bbf2555a2e1de9fec401a56af99edd998dd03ca55869",
        "84baa0d7efc0b996869df59291011e0275d26e725c898a4dd53ff7788fb8c97d"),
    "bench-plain/dyn-unc-run1-r0.7": ("3052497a271d0b97c38058035a2c843c8eb1ba5c520b18a83bd8735187a59add",
        "74d8f04e266a5ebaee951f230d17a8788fa15121c466628e30ea9b40900f7fee"),
    "bench-plain/dyn-unc-run1-r0.9": ("7f46eeab81ce66a3727c6b2a75326e20adb0b669047005300f405cbbdc318055",
        "789904e42f5591359ce8dad872af9d7ab778e905d6459105efbe5f1570406c1d"),
    "bench-plain/forgetting-r0.3": ("5656a75599ced100ee9e83beab5fbb37a7c2e7182d995719d0588832f63fc27e",
        "f00deba8cb3bc3030528136a746263f66761088599c9a26367fffcd2ef1d494c"),
    "bench-plain/forgetting-r0.7": ("027d9974186b86a8c3ccba7055737786e32f4b3136b09011d30956548a9e0e32",
        "a901af94770a7a553fafffcace63fed1dd477e8ec57220342654a302e4dffdb0"),
    "bench-plain/forgetting-r0.9": ("7529205ac6b1ac0e00691cb6e1d1cdff96442163d5fd3fd7fc18a5c086ee2a8b",
        "2629b606694f321b4db1794265b68bb30bb4b52ec4d10393918d1df749a79a6a"),
    "bench-balanced/aum+ccs-r0.3": ("81957642516df0b0a883a94725a60152a368a3302b41fed0fa87f5066202aea0",
        "adaafba3655a37a17092d8049d8dcb7a87b64203a7bcf5b5dfb7764e65236bfc"),
    "bench-balanced/aum+ccs-r0.7": ("5f44faddfe634d6c14d1d43fa21b9edb10ce4c5de7aa7aae39b5f3966b0ae101",
        "886929f3000566ed36aee28f2c4354cf5776429bb366444d6de8ee59eed21e78"),
    "bench-balanced/aum+ccs-r0.9": ("bfc9c6559e377566ca7809b43517f89dd7b778907894e0a49ff0bedefd8e2fec",
        "df187d56973f51f36ba138dcb6b153b3ec6b00c92c74f28d74f43de70a187290"),
    "bench-balanced/dyn-unc+ccs-r0.3": ("77f39badc8f00081a9de17086d3bd44c9704a122421d6ecec5f9682e524ec3f5",
        "53875ae4adf6a6a56e445471ed59e4f96e13b0673cfa2feed753c9941f0d6187"),
    "bench-balanced/dyn-unc+ccs-r0.7": ("bb90cfe3301af53c249dcf0c6768b35fd816c294ef13871309f9422f0dd0146e",
        "31f953cb822d8a89b909d42e2952399b7c2bb3c1d0c201c79353d3aef03b1f3a"),
    "bench-balanced/dyn-unc+ccs-r0.9": ("257683304747ab70048678ef7c843842d235b9c5755a2825bb32bd9a5f2ca7a5",
        "ce4bb3b63fb98d8132d9e47459f40cf6429c57c079f0afbbac89913422edd7b2"),
    "bench-balanced/dyn-unc-r0.3": ("5eaf19605078834bf9543e34d1b3b422e9e223424f744448fd573046f6f2e957",
        "f76485d5e883c70595fd3326fd08ab6f177175ddbe460a3db0a1dfb7ce02dcc8"),
    "bench-balanced/dyn-unc-r0.7": ("edaec501440aa5112e637998cb6c89b340109cec661cadd0f9e31c950190f4d8",
        "f316b33a4458e4e16440e7bebd126df9c5755cf07a9c11eba0079352305d6760"),
    "bench-balanced/dyn-unc-r0.9": ("673d5fd77d8f48a6e9b6b66bd02b7dba448322c688baf3c78cc6642b2da21bab",
        "53f9a3670b142c9627909c2b69a51177c540818ca577f701eb828c0dd11f2766"),
    "bench-balanced/dyn-unc-run1-r0.3": ("e4821153aecd786ba8729e090f79c1740346a662fe649e2e64d8e9efbf32257c",
        "51156361f381dd846ad3295b9f79f8a32539f220a4501069f619169607c26256"),
    "bench-balanced/dyn-unc-run1-r0.7": ("ec80ac3ff1710d5347a391702f81e1453b485ce8443a2eb58261232a0bf91b93",
        "6788609ecb7e294864a7cda3a698978f58910b108d652b96480c01c82cf2ae00"),
    "bench-balanced/dyn-unc-run1-r0.9": ("7f46eeab81ce66a3727c6b2a75326e20adb0b669047005300f405cbbdc318055",
        "4531a04e90f230ad444824fd5cecfaa4622e5950a33c82e3e9827a74f3691196"),
    "bench-balanced/forgetting-r0.3": ("f83597937302360423bcba96ff8b74590e6858ab0a7189ebba3f27451f6ae4ff",
        "777b4c5c18d022b3b49163b41835f211f349db076ea0712c159cdbdde3d548b3"),
    "bench-balanced/forgetting-r0.7": ("027d9974186b86a8c3ccba7055737786e32f4b3136b09011d30956548a9e0e32",
        "e8668c3563b842624b45677100a758658ecac8962661d8bd8df5cd5a6d690f57"),
    "bench-balanced/forgetting-r0.9": ("e1d58e24f7af14777e467ae4359f325dd157e56dfdd09145fccb6e72f8681986",
        "e1b0dc8b971a1fe7068cfecec3079fc6f9536b7cee08830e7829a9096a0ce993"),
    "one-run-dyn-unc": ("1773294bb4768e114a3c1bd0bdfa58ea3fa41cbc823fb8a9b8a34c346af12cd3",
        "c7e408a015f83d6ded8ccf5944d668fd4831b5c14c2c7167b5bff861c7912aa8"),
    "one-run-forgetting": ("df3c5c1f08e047bdf12e1e0a5d8b3b44fb87229510cc561de7e906ad60f41c18",
        "bdd1b0c65dfb981e6b18337a43fe9fe3c6dbd6f6e02cd802797f2bb976d7ad73"),
    "one-run-random-at-0": ("d2fc64eeb57ca267edf05eee7426e2688bd7ddd1236d1e549021833e52e077e9",
        "e4fb5cda3366c4c3fc8da7b390cd8b31147d42698b094d5507204f4ae8f0ca18"),
    "one-run-two-sided": ("8943a291748ffbbcad7ff4a0dd12e4bf2f84dc9dc7ef817f8adf9fee3c754b1b",
        "3a940b2136860257541e7e169125ef6880e217d80e2870f53c952b21a3002875"),
    "one-run-two-sided-gate-shut": ("ba9c1aea248f673bb0831c7df8aa97fdff7b65a3d7db7dcd3fed93a960c8efe6",
        "aafc3e56f0d4ff4394cee67eb8ac6005487dcd3c6034f6dcd95a04cfce2bcd9f"),
}


def test_golden_keep_files_and_manifests(stores, tmp_path):
    got = outputs(stores, tmp_path)
    print(json.dumps(got, indent=1))
    assert got.keys() == GOLDEN.keys()
    assert {k: v for k, v in got.items() if GOLDEN[k] != v} == {}


def _clean(stores):
    import dataprune as dp
    return dp.Dynamics.open(stores["clean"])


@pytest.mark.parametrize("ratio, keep", [(0.3, None), (None, 22)])
def test_one_function_equals_the_public_selectors(stores, ratio, keep):
    import dataprune as dp
    from dataprune.methods.dual import mean_prob
    from dataprune.mislabeled import estimate_noise_rate, label_evidence, select_two_sided, suspect_share
    from dataprune.select_rule import SelectionRule, rule_inputs, select_by_rule
    dyn = _clean(stores)
    s = dp.score("dyn-unc", dyn, window=3)
    labels = np.asarray(dyn.labels)

    def by_rule(rule):
        return select_by_rule(s, rule, ratio, keep=keep, inputs=rule_inputs(rule, [dyn])).keep

    np.testing.assert_array_equal(by_rule(SelectionRule(seed=4)), dp.select(s, ratio, keep=keep, seed=4))
    np.testing.assert_array_equal(by_rule(SelectionRule(class_balanced=True)),
                                  dp.select(s, ratio, keep=keep, labels=labels, class_balanced=True))
    hard = dp.difficulty("aum", dyn)
    np.testing.assert_array_equal(
        by_rule(SelectionRule("stratified", seed=2, beta=0.05, strata=7, class_balanced=True)),
        dp.select_stratified(s, ratio, keep=keep, beta=0.05, difficulty=hard, strata=7, seed=2, labels=labels,
                             class_balanced=True))
    r = ratio if keep is None else (N - keep) / N
    np.testing.assert_array_equal(by_rule(SelectionRule("beta", seed=1, c=3.0, epochs=4)),
                                  dp.select_beta(s, mean_prob(dyn["prob"], 4), r, seed=1, c=3.0))
    if keep is None:
        noisy = dp.Dynamics.open(stores["noisy"])
        rule = SelectionRule("two-sided", nan_policy="prune")
        got = select_by_rule(s, rule, ratio, inputs=rule_inputs(rule, [noisy]))
        evidence = label_evidence(noisy["prob"])
        rate = estimate_noise_rate(evidence, C)
        kept, suspects = select_two_sided(s, evidence, ratio, suspect_share(rate, "auto", K))
        np.testing.assert_array_equal(got.keep, kept)
        assert got.facts == {"noise_rate_estimate": rate, "suspects_dropped": len(suspects)} and len(suspects) == 12


def test_prune_at_sampler_selects_the_same_way(stores):
    import dataprune as dp
    dyn = _clean(stores)
    sampler = dp.PruneAt(N, prune_at=K, rank=0, world_size=1)
    keep = sampler.prune(dyn, "forgetting", 0.4)
    np.testing.assert_array_equal(keep, dp.select(dp.score("forgetting", dyn), 0.4, nan_policy="prune"))


def test_rule_manifest_fields_and_library_errors():
    from dataprune.errors import DataPruneError
    from dataprune.select_rule import RuleInputs, SelectionRule, select_by_rule
    assert SelectionRule(seed=3).to_dict() == {"class_balanced": False, "stratified": False, "tie_seed": 3}
    assert SelectionRule("stratified", beta=0.1, strata=5).to_dict() == {
        "class_balanced": False, "stratified": True, "beta": 0.1, "strata": 5, "seed": 0, "beta_by": "aum"}
    assert SelectionRule("beta", c=3.0, seed=2, epochs=7).to_dict() == {
        "class_balanced": False, "stratified": False, "beta_sampling": True, "beta_c": 3.0, "beta_seed": 2,
        "mean_prob_epochs": 7}
    bad = [dict(rule="best"), dict(rule="beta", class_balanced=True), dict(nan_policy="drop"), dict(seed=-1),
           dict(rule="two-sided"), dict(beta_by="loss")]
    for kw in bad:
        with pytest.raises(DataPruneError) as e:
            SelectionRule(**kw)
        assert "--" not in str(e.value), e.value  # library terms, no CLI flags
    s = np.linspace(0, 1, 10)
    for rule, kw in ((SelectionRule("beta"), {}), (SelectionRule("two-sided", nan_policy="prune"), {}),
                     (SelectionRule("two-sided", nan_policy="prune"), {"keep": 3})):
        with pytest.raises(DataPruneError) as e:
            select_by_rule(s, rule, None if "keep" in kw else 0.5, inputs=RuleInputs(evidence=None), **kw)
        assert "--" not in str(e.value), e.value
