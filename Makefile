# Two commands on a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned: this machine serves torch==$(TORCH) as a local CPU wheel;
# on a GPU box the same version resolves to its CUDA build.
TORCH ?= 2.13.0
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(TORCH)

.PHONY: demo test bench figures clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "torch==$(TORCH)"
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(STAMP)
	MPLBACKEND=Agg $(PY) -m landscape.plot --eps 0.5 --loss l2

test: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_kolmogorov.py

figures: $(STAMP)
	MPLBACKEND=Agg $(PY) -m figures all --fast

clean:
	rm -rf build dist *.egg-info .pytest_cache
