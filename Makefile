# The two commands a newcomer types: `make study` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: install study readme test lint bench clean

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

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf results logs .snakemake
