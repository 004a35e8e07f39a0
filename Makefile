# mser: two commands for a newcomer.
#   make reproduce   set up .venv, retrain every run on the built-in data (quick profile), rebuild
#                    results/ and report whether the committed numbers were reproduced
#   make test        set up .venv and run the test suite
# The papers' setting:  make reproduce DATA=mosi DATA_DIR=/path/to/MMSA/MOSI PROFILE=paper DEVICE=cuda
# On Ray (pip install -e ".[ray]"):  make reproduce EXECUTOR=ray RAY_ADDRESS=ray://head:10001

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# CPU wheel for this machine; CUDA users: make setup TORCH_SPEC="torch==2.13.0 --index-url <CUDA index>"
TORCH_SPEC ?= torch==2.13.0
PROFILE    ?= quick
DATA       ?= synthetic
DATA_DIR   ?=
DEVICE     ?= auto
SEEDS      ?=
FORCE      ?= 0
STRICT     ?= 0
# ONLY=03: some notebooks only (their numbers' prefixes); ESTIMATE=1: say what the training would cost, then stop
ONLY       ?=
ESTIMATE   ?= 0
RESULTS    ?= results
# Training phase executor (inline, process or ray; empty: the pipeline's default) and Ray cluster
# address (empty: $RAY_ADDRESS, else a local Ray). Passed to the pipeline only when set.
EXECUTOR   ?=
RAY_ADDRESS ?=

.PHONY: setup reproduce tables test test-fast lint bench readme-table clean distclean help

help:
	@echo "make reproduce   retrain, regenerate results/, report reproduction (PROFILE=$(PROFILE) DATA=$(DATA) DEVICE=$(DEVICE))"
	@echo "make tables      re-render tables and figures from the committed records (retrains only what a step needs)"
	@echo "make test        run the tests (library + notebooks)"
	@echo "make lint        ruff"
	@echo "make bench       speed and memory benchmarks into benchmarks/results/ (on a GPU also bf16 vs fp32 seeds)"
	@echo "make clean       remove caches; make distclean also removes .venv"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 > /dev/null
	touch $@

# STRICT=1 (CI) fails when a retrained run does not reproduce its committed record.
reproduce: setup
	$(BIN)/python -m mser_lib.pipeline --profile $(PROFILE) --dataset $(DATA) --data-dir "$(DATA_DIR)" \
		--device $(DEVICE) --seeds "$(SEEDS)" --force $(FORCE) --results-dir $(RESULTS) \
		$(if $(filter 1,$(STRICT)),--strict,) $(if $(filter 1,$(ESTIMATE)),--estimate,) \
		$(if $(ONLY),--only $(ONLY),) $(if $(EXECUTOR),--executor $(EXECUTOR),) $(if $(RAY_ADDRESS),--ray-address "$(RAY_ADDRESS)",)

tables: setup
	$(BIN)/python -m mser_lib.pipeline --profile $(PROFILE) --dataset $(DATA) --data-dir "$(DATA_DIR)" \
		--device $(DEVICE) --seeds "$(SEEDS)" --results-dir $(RESULTS) --reuse records

# The library tests run on every core (pytest-xdist, one torch thread per worker); the notebooks run one after
# another under nbval at the smoke profile, into a temporary results folder (the committed notebooks read
# MSER_NB_PROFILE and MSER_NB_RESULTS in their parameters cell).
test: setup
	$(BIN)/python -m pytest tests -q -n auto
	@tmp=$$(mktemp -d); \
	MSER_NB_PROFILE=smoke MSER_NB_RESULTS=$$tmp $(BIN)/python -m pytest --nbval-lax notebooks/ -q \
		-p no:cacheprovider; rc=$$?; rm -rf $$tmp; exit $$rc

test-fast: setup
	$(BIN)/python -m pytest tests -q -n auto -m "not slow"

lint: setup
	$(BIN)/ruff check mser_lib tests benchmarks

# FEMF and Atsuko on this machine's CPU; side by side with the reference codes when FEMF_REFERENCE_ROOT /
# EMOE_REFERENCE_ROOT name local checkouts of L11yc/FEMF and fuyyyyy/EMOE (skipped when unset); the CUDA
# benchmark and bf16-versus-fp32 seeds only where a GPU is.
# bench_compile.py (torch.compile against eager, minutes of compilation per variant) runs on its own:
# .venv/bin/python benchmarks/bench_compile.py
bench: setup
	@for b in benchmarks/bench_femf.py benchmarks/bench_atsuko.py benchmarks/bench_reference.py; do \
		echo "== $$b"; $(BIN)/python $$b || exit 1; done
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		echo "== benchmarks/bench_cuda.py"; $(BIN)/python benchmarks/bench_cuda.py || exit 1; \
		echo "== benchmarks/bf16_seeds.py"; $(BIN)/python benchmarks/bf16_seeds.py --device cuda || exit 1; \
	else echo "== benchmarks/bench_cuda.py and bf16_seeds.py skipped: no CUDA device (benchmarks/run_cuda_checks.sh on a GPU machine)"; fi

readme-table: setup
	$(BIN)/python -m mser_lib.pipeline --readme-table --results-dir $(RESULTS)

clean:
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
