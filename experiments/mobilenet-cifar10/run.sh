#!/usr/bin/env bash
# The real-data experiments of issue 5: ImageNet MobileNet v1 0.25 → CIFAR-10 (the JPEG copy in
# ../shared, full 50,000 / 10,000, resized to 224×224), all four methods per configuration.
#   experiments/mobilenet-cifar10/run.sh CIFAR_JPEG_DIR RUNS_DIR [experiment…]
# CIFAR_JPEG_DIR is the extracted ../shared/data/cifar10/cifar-10-jpg.tar.gz (train/ and test/).
# Each experiment is a `gradfeat compare` run directory under RUNS_DIR; a killed run continues
# where it stopped when this script is run again (feature caches and checkpoints resume).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${1:?usage: run.sh CIFAR_JPEG_DIR RUNS_DIR [experiment…]}"
runs="${2:?usage: run.sh CIFAR_JPEG_DIR RUNS_DIR [experiment…]}"
shift 2
experiments=("$@")
[ ${#experiments[@]} -gt 0 ] || experiments=(1-last-block 2-last-two-blocks 3-random-theta1 3-random-theta2 3-random-omega 4-standard-coordinates 5-paper-optimiser)
gradfeat=(node "$here/../../packages/cli/dist/bin.js")

compare() {
  local name="$1" config="$2"
  shift 2
  local resume=()
  [ -f "$runs/$name/config.json" ] && resume=(--resume)
  echo "== $name" >&2
  "${gradfeat[@]}" compare --config "$here/$config" --dataset "folder:$data" --out "$runs/$name" "${resume[@]}" "$@"
}

for experiment in "${experiments[@]}"; do
  case "$experiment" in
    1-last-block) compare "$experiment" base.yaml --cache-dir "$runs/cache-pw12" ;;
    2-last-two-blocks) compare "$experiment" last-two-blocks.yaml --cache-dir "$runs/cache-pw11" ;;
    # The ablation changes only the gradient term, so it trains the gradient and full models.
    3-random-theta1) compare "$experiment" base.yaml --methods gradient full --randomise theta1 --cache-dir "$runs/cache-pw12-random-trunk" ;;
    3-random-theta2) compare "$experiment" base.yaml --methods gradient full --randomise theta2 --cache-dir "$runs/cache-pw12" ;;
    3-random-omega) compare "$experiment" base.yaml --methods gradient full --randomise omega --cache-dir "$runs/cache-pw12" ;;
    4-standard-coordinates) compare "$experiment" base.yaml --methods gradient full --parametrisation standard --cache-dir "$runs/cache-pw12" ;;
    # Its own cache, so that its phase times include extracting the trunk outputs (JPEG decoding included).
    5-paper-optimiser) compare "$experiment" paper-optimiser.yaml --cache-dir "$runs/cache-pw12-paper" ;;
    *) echo "unknown experiment '$experiment'" >&2; exit 2 ;;
  esac
done
