# The two commands that matter: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test package bench openapi clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/python -m aloft_local

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -rs

package: $(STAMP)
	rm -rf build
	$(BIN)/chalice package --merge-template infra/resources.json --stage prod build/
	@echo "CloudFormation template: build/sam.json, code: build/deployment.zip"
	@$(BIN)/python -c "import os, zipfile; z = 'build/deployment.zip'; \
	  n = sum(i.file_size for i in zipfile.ZipFile(z).infolist()); \
	  print(f'deployment.zip: {os.path.getsize(z):,} bytes, unzipped {n:,}:' \
	        f' {n / 262_144_000:.0%} of Lambda\'s 250 MB (262,144,000 bytes)')"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

openapi: $(STAMP)
	$(BIN)/python -m chalicelib.openapi > openapi.json

clean:
	rm -rf $(VENV) build .pytest_cache
