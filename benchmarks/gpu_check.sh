#!/usr/bin/env bash
# GPU check (issue 16, item 4). On a machine with NVIDIA GPUs, from a fresh clone:
#
#     bash benchmarks/gpu_check.sh            # `make setup`, then the three steps below
#     bash benchmarks/gpu_check.sh --dry-run  # print the commands only
#
# 1. the CUDA-marked tests (pytest -m cuda);
# 2. `dataprune record` with DDP over nccl on all GPUs (torchrun), then `dataprune check` of its store;
# 3. the Recorder's overhead per step, torchvision resnet50 at 224 px, bf16 (target <= 1 %).
# Writes benchmarks/results/gpu_check.md (nvidia-smi, then each step's result, time and
# output; the versions of torch, CUDA and nccl are the second step's output) and exits 1 if a
# step fails. The steps after `make setup` are limited to 8 minutes in all. Never yet run on
# a GPU: tests/test_gpu_check.py runs it on CPU with a fake nvidia-smi.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "gpu_check.sh: unknown argument '$1'; expected --dry-run or nothing" >&2; exit 2 ;;
esac
PY=.venv/bin/python
REPORT=benchmarks/results/gpu_check.md
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[[ $DRY == 1 && $NGPU == 0 ]] && NGPU='$NGPU'  # shown as a variable when there is no GPU here
TMP=$(mktemp -d /tmp/gpu_check.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
RUN=$TMP/score-fm

ROWS=()     # report table rows: | step | result | seconds | last line of output |
DETAILS=()  # report sections: each step's command and output tail
FAILED=0

# shown CMD...: the command as one line that a shell would read back (quoted where needed)
shown() {
  local a out=()
  for a; do if [[ $a =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then out+=("$a"); else out+=("${a@Q}"); fi; done
  echo "${out[*]}"
}

# step NAME TIMEOUT_S CMD...: run CMD (at most TIMEOUT_S s), log its output, note pass/fail.
step() {
  local name=$1 limit=$2; shift 2
  if [[ $DRY == 1 ]]; then shown "$@"; return 0; fi
  echo "== $name: $(shown "$@")"
  local log=$TMP/step${#ROWS[@]}.log t0=$SECONDS rc
  timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local result=pass
  if [[ $rc != 0 ]]; then
    result="FAIL (exit $rc$([[ $rc == 124 ]] && echo ", over ${limit} s"))"
    FAILED=1
  fi
  local last
  last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c 1-200)
  ROWS+=("| $name | $result | $((SECONDS - t0)) | ${last//|/\\|} |")
  DETAILS+=("### $name"$'\n\n'"\`$(shown "$@")\`"$'\n\n```\n'"$(tail -n 25 "$log")"$'\n```\n')
  return "$rc"
}

# report: write $REPORT from the steps run so far, then exit (1 if a step failed).
report() {
  [[ $DRY == 1 ]] && exit 0
  local verdict
  verdict=$([[ $FAILED == 0 ]] && echo 'all steps passed' || echo 'a step FAILED')
  mkdir -p "$(dirname "$REPORT")"
  {
    echo "# GPU check"
    echo
    echo "\`bash benchmarks/gpu_check.sh\`, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), \
$(date -u '+%Y-%m-%d %H:%M UTC'): **$verdict**"
    echo
    echo '```'; nvidia-smi 2>&1; echo '```'
    echo
    echo "| step | result | seconds | last line of output |"
    echo "| --- | --- | ---: | --- |"
    printf '%s\n' "${ROWS[@]}"
    echo
    printf '%s\n' "${DETAILS[@]}"
  } > "$REPORT"
  echo "gpu_check.sh: $verdict; report: $REPORT"
  exit "$FAILED"
}

if [[ $NGPU == 0 ]]; then echo "gpu_check.sh: nvidia-smi lists no GPU; this check needs NVIDIA GPUs" >&2; exit 1; fi
step "make setup" 1800 make setup || report
step "torch sees the GPUs" 30 "$PY" -c "import torch; n = torch.cuda.device_count(); \
print(dict(torch=torch.__version__, cuda=torch.version.cuda, nccl=torch.cuda.nccl.version(), gpus=n)); \
assert n == $NGPU, f\"torch sees {n} GPUs, nvidia-smi lists $NGPU (CUDA_VISIBLE_DEVICES?)\"" || report
# the time limits of the four steps below add up to 8 minutes
step "CUDA-marked tests" 120 "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider
DDP_STEP="DDP over nccl: record on $NGPU GPUs"
[[ $NGPU == 1 ]] && DDP_STEP="record on the one GPU (no DDP: nccl needs a GPU per rank)"
step "$DDP_STEP" 150 "$PY" -m dataprune record --nproc "$NGPU" --device cuda \
  --precision bf16 --dataset fashion-mnist --model small-cnn --epochs 2 --out "$RUN" --force
step "dataprune check of that run" 30 "$PY" -m dataprune check "$RUN"
step "Recorder overhead: resnet50, 224 px, bf16" 180 "$PY" benchmarks/recorder_gpu_overhead.py
report
