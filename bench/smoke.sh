#!/usr/bin/env bash
# bench_smoke (CTest): graft_bench prepare, every workload on a few samples, and — when PyTorch is
# installed — the twin check (same .h5 file, same predictions) and one tiny PyTorch run.
# Usage: smoke.sh GRAFT_BENCH TORCH_BENCH WORK_DIR. Exit code 3: Fashion-MNIST missing (skipped).
set -euo pipefail
gb=$1 tb=$2 work=$3
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "bench_smoke: Fashion-MNIST missing (apt-get install dataset-fashion-mnist): skipped"; exit 3
fi
mkdir -p "$work/dumps"
rm -f "$work/dumps/mobilenet.f32"
# the MobileNetV2 workloads need the Teachable Machine model of the shared Keras corpus (beside the checkout)
tm_path="$(cd "$(dirname "$tb")/../.." && pwd)/shared/keras-corpus/tm_aknight_keras_model.h5"
tm=""
[ -e "$tm_path" ] && tm="$tm_path"
"$gb" prepare --out "$work" ${tm:+--tm-model "$tm"}
for wl in mlp_train mlp_predict256 mlp_predict1 finetune_frozen cnn_train cnn_predict load; do
  "$gb" run $wl --weights "$work" --samples 64 --epochs 1 --threads 2
done
"$gb" run mlp_predict256 --weights "$work" --samples 64 --dump "$work/dumps/mlp.f32"
"$gb" run cnn_predict --weights "$work" --samples 64 --dump "$work/dumps/cnn.f32"
if [ -n "$tm" ]; then
  "$gb" run mobilenet_finetune_frozen --weights "$work" --samples 64 --epochs 2 --threads 2
  "$gb" run image_pipeline --weights "$work" --samples 64 --threads 2
  "$gb" run mobilenet_predict --weights "$work" --samples 32 --threads 2
  "$gb" run mobilenet_train --weights "$work" --samples 32 --epochs 1 --threads 2
  "$gb" run mobilenet_finetune_frozen --weights "$work" --dump "$work/dumps/mobilenet.f32"
else
  echo "bench_smoke: $tm_path missing: the MobileNetV2 workloads are skipped"
fi
if /usr/bin/python3 -c "import torch, h5py" 2>/dev/null; then
  export OPENBLAS_NUM_THREADS=1
  /usr/bin/python3 "$tb" check --weights "$work" --dumps "$work/dumps" --samples 64
  /usr/bin/python3 "$tb" run finetune_frozen --weights "$work" --samples 64 --epochs 1
  if [ -n "$tm" ] && /usr/bin/python3 -c "import PIL" 2>/dev/null; then
    /usr/bin/python3 "$tb" run mobilenet_finetune_frozen --weights "$work" --samples 64 --epochs 1
    /usr/bin/python3 "$tb" run mobilenet_predict --weights "$work" --samples 32 --trunk-mode jit
    /usr/bin/python3 "$tb" run mobilenet_train --weights "$work" --samples 32 --epochs 1 --trunk-mode channels_last
  fi
else
  echo "bench_smoke: PyTorch (python3-torch) not installed: twin check skipped"
fi
