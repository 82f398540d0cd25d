#!/usr/bin/env bash
# The long CPU benchmarks whose outputs live in benchmarks/results/. Each command is
# resumable: rerun it after an interruption and only the missing cells run; run
# `dataprune bench --report-only --out DIR` to tabulate a partial run. Every study also trains
# the matched-compute baseline (all data at cost 1 - r, or the one-run study's budget curve
# 0.5..0.9): rerunning a command on a folder made before it adds and trains only those cells.
# Times are for 2 CPU cores (see docs/bench.md for the estimate); set LIMIT= (e.g.
# LIMIT="--limit 20000") to run everything on the first 20000 training samples, ~3x faster;
# THREADS=N sets the CPU threads of every study (default: all cores, or one where stated).
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${LIMIT:-}
dataprune() { PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} ${PYTHON:-python} -m dataprune "$@"; }  # this checkout; PYTHON=.../venv/bin/python
R=benchmarks/results
COMMON="--dataset fashion-mnist $LIMIT --score-epochs 30 --window 10 --train-epochs 10 --seeds 3 ${THREADS:+--threads $THREADS}"

case "${1:-all}" in
main|all)
  # Table 2 / Fig. 1-3: every registered method, 4 ratios, 3 seeds, small-cnn scoring and
  # training, OOD AUPR on sklearn's digits (Table 6); then mlp trained on the same subsets
  # (Table 4/5 cross-architecture; ~7 s a cell), reusing the scoring run and keep files.
  # MAIN_METHODS: every method registered when the committed run was made (`all` would now add
  # dual, registered later, and redo the 30-epoch scoring run whose store is not committed).
  MAIN_METHODS=${MAIN_METHODS:-random,forgetting,entropy,el2n,aum,grand,ssp,moderate,cartography,tdds,dyn-unc}
  dataprune bench $COMMON --score-model small-cnn --train-models small-cnn --methods $MAIN_METHODS \
    --prune-ratios 0.25,0.3,0.4,0.5 --ood-dataset digits --out $R/fashion-mnist-main
  dataprune bench $COMMON --score-model small-cnn --train-models mlp --methods $MAIN_METHODS \
    --prune-ratios 0.25,0.3,0.4,0.5 --ood-dataset digits --out $R/fashion-mnist-main
  ;;&
cross|all)
  # Table 4: mlp scoring -> small-cnn/mlp training at r=0.25, in the main folder so the
  # small-cnn scoring run and the full-set cells are reused.
  dataprune bench $COMMON --score-model mlp --train-models small-cnn,mlp \
    --methods random,forgetting,moderate,dyn-unc --prune-ratios 0.25 --ood-dataset digits \
    --out $R/fashion-mnist-main
  ;;&
noise|all)
  # 20 % symmetric label noise: the paper's seven methods at r=0.25 and 0.5; table.md adds
  # the share of noisy samples among each method's removed samples.
  dataprune bench $COMMON --score-model small-cnn --train-models small-cnn \
    --methods random,forgetting,entropy,el2n,ssp,moderate,dyn-unc --prune-ratios 0.25,0.5 \
    --label-noise 0.2 --noise-seed 0 --out $R/fashion-mnist-noise20
  ;;&
noise40|all)
  # 40 % symmetric label noise, the same methods and ratios (not run yet)
  dataprune bench $COMMON --score-model small-cnn --train-models small-cnn \
    --methods random,forgetting,entropy,el2n,ssp,moderate,dyn-unc --prune-ratios 0.25,0.5 \
    --label-noise 0.4 --noise-seed 0 --out $R/fashion-mnist-noise40
  ;;&
longtail10|longtail100|all)
  # Long-tailed training sets: class c keeps floor(6000 * F^(-c/9)) samples (seeded subset),
  # the test set unchanged (not run yet)
  for F in 10 100; do
    case "${1:-all}" in longtail10) [ $F = 10 ] || continue;; longtail100) [ $F = 100 ] || continue;; esac
    dataprune bench $COMMON --score-model small-cnn --train-models small-cnn \
      --methods random,forgetting,el2n,aum,dyn-unc,dual --prune-ratios 0.25,0.5 \
      --imbalance $F --imbalance-seed 0 --out $R/fashion-mnist-longtail$F
  done
  ;;&
ablation|all)
  # Table 7: Dyn-Unc from 3 scoring runs (seeds 0-2, scores averaged) vs from 1 run, vs one
  # variance over the run (cartography).
  dataprune bench $COMMON --score-model small-cnn --score-runs 3 --methods dyn-unc,cartography \
    --train-models small-cnn --prune-ratios 0.25,0.5 --out $R/fashion-mnist-runs3
  ;;&
high|high-60k|high-iters|all)
  # High prune ratios (70-90 %): the main bench's scoring settings (small-cnn, K=30, J=10,
  # clean view, 10 training epochs, 3 seeds) with DUAL (top-k and Beta sampling) and CCS over
  # AUM (the CCS paper's hard-cutoff beta per ratio), one thread each.
  HIGH="$COMMON --threads 1 --score-model small-cnn --train-models small-cnn \
    --methods random,dyn-unc,dual,dual+beta,aum+ccs,tdds,el2n,forgetting --prune-ratios 0.7,0.8,0.9"
  ;;&
high|all)
  # the first 20000 training samples (HIGH_LIMIT; the machine was shared by 8 jobs)
  dataprune bench $HIGH ${HIGH_LIMIT---limit 20000} --out $R/fashion-mnist-high
  ;;&
high-60k|all)
  # all 60000 training samples (~45 min)
  dataprune bench $HIGH --out $R/fashion-mnist-high-60k
  ;;&
high-60k-balanced|all)
  # class-balanced selection (Beta sampling is not class-balanced: no dual+beta); the full-set
  # cells are those of high-60k (--no-full)
  dataprune bench $COMMON --threads 2 --score-model small-cnn --train-models small-cnn \
    --methods random,dyn-unc,dual,aum+ccs,el2n,forgetting --prune-ratios 0.7,0.8,0.9 \
    --class-balanced --no-full --out $R/fashion-mnist-high-60k-balanced
  ;;&
high-iters|all)
  # The CCS and DUAL papers' protocol: every subset trains for as many optimizer steps as the
  # full set gets (--subset-budget iterations), so a 10 % subset runs 99 epochs; first 20000 samples.
  dataprune bench $HIGH ${HIGH_LIMIT---limit 20000} --subset-budget iterations --out $R/fashion-mnist-high-iters
  ;;&
cost|all)
  # What scoring can cost: clean vs train view, J=5/10/20, K=10/20 vs 30, mlp proxy scoring;
  # scoring seconds vs small-cnn accuracy of the r=0.25 / 0.5 Dyn-Unc subsets.
  dataprune bench $COMMON --study cost --score-model small-cnn --proxy-model mlp \
    --cost-windows 5,10,20 --cost-epochs 10,20 --train-models small-cnn --prune-ratios 0.25,0.5 \
    --out $R/fashion-mnist-cost
  ;;&
one-run|one-run-small-cnn|all)
  # Pruning inside the one training run (issue 11): full, random from epoch 0, InfoBatch, and
  # each method (dual, dyn-unc, el2n, forgetting where registered: --methods all) scored on the
  # train view of the first T epochs, then E-T epochs on the subset. First pass: R=0.3, T<=3,
  # 3 seeds (seed 0 of every variant first); then the whole grid (T=5, R=0.5, F=0.5 recordings).
  # small-cnn E=10 here, mlp E=15 below; the two arms may run in parallel (one-run-small-cnn,
  # one-run-mlp), each on one thread. The committed run used LIMIT="--limit 20000".
  ONE="--study one-run --dataset fashion-mnist $LIMIT --methods all --seeds 3 --threads ${THREADS:-1} \
    --out $R/fashion-mnist-one-run"
  dataprune bench $ONE --prune-at 1,2,3 --prune-ratios 0.3 --train-models small-cnn --train-epochs 10
  dataprune bench $ONE --prune-at 1,2,3,5 --prune-ratios 0.3,0.5 --record-every 0.5 \
    --train-models small-cnn --train-epochs 10
  ;;&
one-run-60k|all)
  # The target configurations of the one-run study on all 60000 samples, one thread: full,
  # random r=0.3, InfoBatch, el2n T=2/3, dual T=3 (small-cnn E=10, 3 seeds); ~35 min.
  dataprune bench --study one-run --dataset fashion-mnist --methods el2n,dual --prune-at 2,3 \
    --prune-ratios 0.3 --seeds 3 --threads 1 --train-models small-cnn --train-epochs 10 \
    --out $R/fashion-mnist-one-run-60k
  ;;&
one-run|one-run-mlp|all)
  ONE="--study one-run --dataset fashion-mnist $LIMIT --methods all --seeds 3 --threads ${THREADS:-1} \
    --out $R/fashion-mnist-one-run"
  dataprune bench $ONE --prune-at 1,2,3 --prune-ratios 0.3 --train-models mlp --train-epochs 15
  dataprune bench $ONE --prune-at 1,2,3,5 --prune-ratios 0.3,0.5 --record-every 0.5 \
    --train-models mlp --train-epochs 15
  ;;
esac
