# make demo · make test · make bench — each sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	@echo "[setup] creating $(VENV) and installing opengradient-llm-integrations[all,examples,dev] ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@# setuptools' editable build tells "Editable installation ..." as a UserWarning: informational only
	@PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q --disable-pip-version-check -e ".[all,examples,dev]" 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) -c "import opengradient_shared, langchain_core, llama_index.core, langchain_tests" \
		|| (echo "[setup] installation failed"; exit 1)
	@touch $(STAMP)
	@echo "[setup] done"

demo: $(STAMP)
	@$(PY) examples/demo.py $(ARGS)

test: $(STAMP)
	@$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	@$(PY) benchmarks/run_all.py

lint: $(STAMP)
	@$(PY) -m ruff check shared langchain_opengradient llamaindex_opengradient tests benchmarks examples
	@$(PY) -m ruff format --check shared langchain_opengradient llamaindex_opengradient tests benchmarks examples
	@$(PY) -m mypy -p opengradient_shared -p langchain_opengradient -p llamaindex_opengradient

clean:
	rm -rf $(VENV) build *.egg-info
