# Fresh machine: `make demo` (train + infer on the built-in data) and `make test`.
# Each target creates the virtual environment and builds the extension by itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SO     := alexnet_cpu/_C$(shell $(PYTHON) -c "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX'))")
SRCS   := $(wildcard csrc/*.c csrc/*/*.c csrc/*/*.h alexnet_cpu/_C.pyx alexnet_cpu/_kernels/*.pxi) setup.py

.PHONY: all venv build test demo pictures bench mpi clean

all: build

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "setuptools>=64" wheel "cython>=3.0" "numpy>=1.24" "pillow>=9" "threadpoolctl>=3" "pytest>=7.3" "pytest-xdist>=3"
	touch $@

venv: $(VENV)/.installed

$(SO): $(VENV)/.installed $(SRCS)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	$(PY) setup.py -q build_ext --inplace

build: $(SO)

# Two pytest workers, a test file each at a time: most of the suite's time is single-threaded
# Python, file writes and subprocesses, which two cores overlap.
test: build
	$(PY) -m pytest -q -n 2 --dist loadfile

demo: build
	$(VENV)/bin/alexnet-cpu demo

# The README's pictures (docs/images/) from the demo's model: run `make demo` first.
DEMO_VAL = $(shell $(PYTHON) -c "import os;print(os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),'alexnet-cpu','synthetic-v1','val'))")
pictures: build
	mkdir -p docs/images runs/gradcam
	cp runs/demo.png docs/images/curves.png
	$(VENV)/bin/alexnet-cpu evaluate -load runs/demo.safetensors -data $(DEMO_VAL) -o docs/images/confusion.png
	$(VENV)/bin/alexnet-cpu filters -load runs/demo.safetensors -o docs/images/conv1.png
	rm -f runs/gradcam/*.png
	$(VENV)/bin/alexnet-cpu explain -input $(DEMO_VAL)/star/00005.png -load runs/demo.safetensors -layer conv2 -o runs/gradcam
	cp runs/gradcam/*.png docs/images/gradcam.png

# Data-parallel training: mpi4py and an MPI from PyPI wheels (no system MPI needed).
mpi: build
	$(PY) -m pip install -q "mpi4py>=4" mpich

bench: build
	$(PY) -m pip install -q torch==2.13.0 onnx onnxruntime openvino
	$(PY) benchmarks/run.py

clean:
	rm -rf build $(SO) alexnet_cpu/_C.c *.egg-info
