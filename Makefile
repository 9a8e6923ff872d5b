# geosound — set-up and everyday commands. Each target installs into .venv first when needed.
#   make demo     install if needed, then run the offline demo (writes ./geosound-demo/)
#   make test     install if needed, then run the test suite and the notebooks (nbmake),
#                 on two worker processes (TEST_WORKERS=1 for one)
#   make test-fast  the same without the slow tests (pretrained encoders, benchmarks, end-to-end
#                 CLI runs) and those needing the shared dev data: a couple of minutes
#   make install  only the install (library + CLI + offline encoders)
#   make lint     ruff, mypy and the import-linter contracts (what .ci/run checks after tests)
#   make docs     the documentation site into site/, strict (a warning fails it), as .ci/run does
#   make plugin   build dist/geosound_qgis-<version>.zip, the QGIS plugin (needs only python3)
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.geosound-installed

.PHONY: install demo test test-fast notebooks docs lint bench clean-venv

install: $(STAMP)

# torch first, pinned to the CPU build (any other spec pulls gigabytes of CUDA); then the
# package with its deps; then aisfx with --no-deps, because its own pins (numpy==1.23,
# librosa==0.9.2) clash with ours while its code runs fine on them.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps aisfx==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/geosound demo

# The suite and the notebooks in one pytest run on TEST_WORKERS processes (pytest-xdist). A file
# stays on one worker (--dist loadfile), so its module fixtures (the QGIS runs) run once;
# xdist hands out the files with the most items first, so the notebooks (one item each) come
# last. Two workers on the 2-core CI machine finish the suite in 1,132 s instead of 1,985 s
# one after the other, and suite plus notebooks in 1,254 s (2026-12-07); more workers would
# each load torch and the models again.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -p no:cacheprovider \
		--nbmake --nbmake-timeout=900 tests notebooks

# Each notebook runs top to bottom in its own kernel; a failure names the cell. Their outputs
# are never committed (they land in notebooks/*-out/, ignored by git).
notebooks: $(STAMP)
	$(PY) -m pytest -q --nbmake --nbmake-timeout=900 -p no:cacheprovider notebooks

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not devdata"

# ruff (style, docstrings, complexity), mypy (types) and import-linter (the package layers of
# docs/ARCHITECTURE.md): each names the rule a change broke.
lint: $(STAMP)
	$(VENV)/bin/ruff check geosound tests benchmarks qgis_plugin
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/bench_tiling.py

clean-venv:
	rm -rf $(VENV)

# The QGIS plugin as the zip QGIS installs ("Install from ZIP"): geosound_qgis/ at the root,
# no caches; the version comes from the plugin's metadata.txt.
PLUGIN_VERSION := $(shell sed -n 's/^version=//p' qgis_plugin/geosound_qgis/metadata.txt)
.PHONY: plugin
plugin:
	python3 qgis_plugin/build_zip.py dist/geosound_qgis-$(PLUGIN_VERSION).zip
