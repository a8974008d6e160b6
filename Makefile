# nctk: two commands on a fresh machine, `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint kernels bench bench-gpu clean

# Pinned dependencies (requirements.txt) into .venv, then nctk itself in editable mode.
$(STAMP): requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# rANS kernels compiled ahead of time (short calls never start Numba) and Numba's cache warmed for the rest,
# so the first call after installing is as fast as any later one. Rebuilt when the kernels' sources change.
KERNELS := $(VENV)/.kernels
KERNEL_SOURCES := $(addprefix entropy/,rans_aot.py rans_numba.py rans_host.py rans_ref.py jit.py) \
	codec/image/context_numba.py
$(KERNELS): $(STAMP) $(KERNEL_SOURCES)
	$(BIN)/python -m nctk.entropy.rans_aot
	$(BIN)/python -m nctk.codec.image.context_numba
	touch $(KERNELS)

kernels: $(KERNELS)

BENCH_STAMP := $(VENV)/.bench-installed

# Peers and classical baselines (faiss, zipnn, zfp, SZ3, AVIF, ...) for benchmarks, `nctk rd` and the tests of
# its baseline adapters, constrained to the pinned venv so nothing moves.
$(BENCH_STAMP): $(STAMP) benchmarks/requirements.txt
	$(BIN)/pip freeze | grep -v -e '^-e' -e '^nctk' > $(VENV)/constraints.txt
	$(BIN)/pip install -q -r benchmarks/requirements.txt -c $(VENV)/constraints.txt
	touch $(BENCH_STAMP)

demo: $(KERNELS)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash assets/demo/run_demo.sh

test: $(KERNELS) $(BENCH_STAMP)
	$(BIN)/ruff check nctk codec entropy cli rd train assets tests benchmarks studies
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check nctk codec entropy cli rd train assets tests benchmarks studies

# Benchmarks rewrite benchmarks/RESULTS.md; run them alone on the machine.
bench: $(BENCH_STAMP) $(KERNELS)
	$(BIN)/python benchmarks/entropy_bench.py
	$(BIN)/python benchmarks/rvq_bench.py
	$(BIN)/python benchmarks/startup_bench.py
	$(BIN)/python benchmarks/memory_bench.py

# On a machine with a CUDA device (numba-cuda installed, torch with CUDA for the matmul reference).
bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/gpu_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
