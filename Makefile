# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Torch on 2 cores: OpenMP busy-waiting makes 2 threads slower than 1.
export OMP_WAIT_POLICY ?= PASSIVE
export MUJOCO_GL ?= egl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the local CPU build; an unpinned torch pulls multi-GB CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[tensorboard]'
	touch $(STAMP)

# The tests also cover the optional backends: real LIBERO, Ray and LeRobot's SmolVLA.
# LeRobot without its dependencies (they pin torch and torchvision to CUDA builds), then the
# ones the adapter needs (the lerobot-nodeps extra); the tests stand in for torchvision.
LEROBOT := lerobot==0.4.4
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,tensorboard,libero,ray,lerobot-nodeps]'
	$(BIN)/pip install --quiet --no-deps $(LEROBOT)
	touch $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/smoothvla demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
