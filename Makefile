# The two commands a newcomer types: `make study` and `make test` (`make check`: the fast tier).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: install study readme test check lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU torch first, from the pinned release; see README for a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# the surgclip package's own model classes, the reference of tests/test_models_surgclip.py (its __init__
	# needs transformers 4.x and is never imported; --no-deps keeps timm and torchvision out)
	$(BIN)/pip install --quiet --no-deps surgclip==0.1.0 einops==0.8.2
	touch $@

study: install
	MLFLOW_DISABLE_TELEMETRY=true PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES)
	MLFLOW_DISABLE_TELEMETRY=true PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --report results/paper/report.html

# the README's result blocks and figures, refreshed from the last study (and its narration-noise and
# protocol-sensitivity sweeps)
readme: install
	$(BIN)/hecvl paper readme
	cp results/paper/accuracy_f1.png docs/figures/default_accuracy_f1.png
	cp results/paper/convergence.png docs/figures/default_convergence.png
	test ! -f results/noise/findings.md || $(BIN)/hecvl paper readme --block noise
	test ! -f results/noise/findings.md || cp results/paper/narration_noise.png docs/figures/default_narration_noise.png
	test ! -f results/paper/protocol_sensitivity.md || $(BIN)/hecvl paper readme --block protocols
	test ! -f results/paper/protocol_sensitivity.md || cp results/paper/protocol_sensitivity.png docs/figures/default_protocol_sensitivity.png

test: install
	MLFLOW_DISABLE_TELEMETRY=true PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

# the inner loop: lint, then every test not marked slow (no workflow, study, browser, cluster, notebook
# or benchmark runs; those are in `make test`)
check: lint
	MLFLOW_DISABLE_TELEMETRY=true PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

# what CI gates before the tests: ruff, Snakemake's own linter, and the schema generated from the models
lint: install
	$(BIN)/ruff check src tests benchmarks
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint
	$(BIN)/hecvl params schema --check

# every benchmark for real, each printing its table and a last JSON line (README, "Tests and benchmarks"):
# on the world in data/world (generated as `hecvl acquire` would when absent), its pairs in data/pairs
# (else paired into benchmarks/out/pairs), decode.py on the real clip of ../shared/fixtures when present,
# evaluate.py on 32 test videos (all four datasets' 64 take ~10 min on 2 cores)
bench: BENCH_PAIRS = $(if $(wildcard data/pairs/stats.json),data/pairs,benchmarks/out/pairs)
bench: install
	test -f data/world/manifest.json || $(BIN)/hecvl synth --params params.yaml --workers $(CORES)
	test -f $(BENCH_PAIRS)/stats.json || HECVL_TRACKING=off $(BIN)/hecvl pair data/world/corpus \
		--params params.yaml --out $(BENCH_PAIRS) --no-progress
	clip="$${HECVL_SHARED:-../shared}/fixtures/videos/autolaparo_clip_up.mp4"; \
		if [ -f "$$clip" ]; then $(BIN)/python benchmarks/decode.py "$$clip"; \
		else $(BIN)/python benchmarks/decode.py $$(ls data/world/targets/cholec80/videos/*.mp4 | head -2); fi
	$(BIN)/python benchmarks/loader.py --corpus data/world/corpus --pairs $(BENCH_PAIRS) --clips 256
	$(BIN)/python benchmarks/evaluate.py --params params.yaml --dataset cholec80 --dataset autolaparo --repeats 2
	$(BIN)/python benchmarks/pretrain.py --params params.yaml --pairs $(BENCH_PAIRS) --corpus data/world/corpus

clean:
	rm -rf results logs .snakemake
