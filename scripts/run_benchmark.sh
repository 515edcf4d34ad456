#!/usr/bin/env bash
# Reproduce the tables of docs/RESULTS.md: `nero eval` of every detector on the Kvasir-SEG window benchmark
# (ID = 2-class windows, OOD = laparoscopic, capsule, chest X-ray, natural photos) for three classifiers.
#
#   scripts/run_benchmark.sh                     # all three architectures
#   ARCHS="resnet18" scripts/run_benchmark.sh    # a subset
#
# Needs work/benchmark (python scripts/prepare_data.py) and the bundled EfficientNet-Lite0
# (centroids/default/model.safetensors). ResNet-18 and DeiT-S have no pretrained weights here: when
# work/models/ARCH.safetensors is missing they are trained from scratch with the settings RESULTS.md reports
# (about 3 and 4 minutes on one H100; many hours on a laptop CPU). Results go to out/benchmark/ARCH/; the
# bundled EfficientNet-Lite0 also scores the demo clip frame by frame (video.md: temporal smoothing).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BENCH=work/benchmark
OODS=(--ood "$BENCH/OOD/laparoscopic" --ood "$BENCH/OOD/capsule" --ood "$BENCH/OOD/chest-xray"
      --ood "$BENCH/OOD/natural")
[ -d "$BENCH/ID/train" ] || "$PY" scripts/prepare_data.py

for arch in ${ARCHS:-efficientnet_lite0 resnet18 deit_small}; do
  extra=()
  case "$arch" in
    efficientnet_lite0) weights=centroids/default/model.safetensors
                        extra=(--video scripts/demo/clip.mp4) ;;   # the monitor's model: also the demo clip
    resnet18) weights=work/models/resnet18.safetensors; epochs=80; lr=1e-3 ;;
    deit_small) weights=work/models/deit_small.safetensors; epochs=55; lr=1e-4 ;;
    *) echo "unknown architecture $arch" >&2; exit 2 ;;
  esac
  if [ ! -f "$weights" ]; then
    "$PY" scripts/train_classifier.py --arch "$arch" --init random --epochs "$epochs" --lr "$lr" \
        --workers "${WORKERS:-4}" --out "$weights"
  fi
  mkdir -p work/configs
  config=work/configs/$arch.yaml
  # paths in a config are relative to its own folder: give the weights as an absolute path
  printf 'model:\n  arch: %s\n  weights: %s\n  num_classes: 2\n' "$arch" "$PWD/$weights" > "$config"
  "$PY" -m pipeline eval --config "$config" --id-train "$BENCH/ID/train" --id-test "$BENCH/ID/val" \
      "${OODS[@]}" "${extra[@]}" --out "out/benchmark/$arch"
done
