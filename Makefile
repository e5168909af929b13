# Two commands do all the set-up on a fresh machine:
#   make demo   - creates .venv when missing, then runs the main job on the embedded default images
#   make test   - creates .venv when missing, then runs the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test venv browser postgres codec-tools clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps neuralcompression==0.3.1  # test dependency, see pyproject.toml
	touch $(STAMP)

# Headless Chromium for the browser tests (Debian's package; Playwright drives it).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }

# PostgreSQL server binaries for the storage tests (Debian's package; each test run starts
# and deletes its own throw-away server on a Unix socket).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL tests need Debian's postgresql: sudo apt-get install postgresql"; fi; }

# The command-line codecs of the benchmark's shipped specs (hific/bench/specs): JPEG XL's cjxl/djxl and
# libavif's avifenc/avifdec (Debian's libjxl-tools and libavif-bin).
codec-tools:
	@{ command -v cjxl && command -v djxl && command -v avifenc && command -v avifdec; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjxl-tools libavif-bin >/dev/null; \
	  else echo "benchmark codec tests need Debian's libjxl-tools and libavif-bin: sudo apt-get install libjxl-tools libavif-bin"; fi; }

# The main job: the benchmark on the embedded default images (scikit-image's photos) with the shipped
# HiFiC models and BPG (or its labelled x265 stand-in), then the HTML report of the analysis notebooks.
DEMO_OUT ?= results/demo
demo: $(STAMP)
	$(PY) benchmarks/run.py --codecs hific,bpg --out $(DEMO_OUT)
	$(PY) -m analysis.report $(DEMO_OUT) --out $(DEMO_OUT)/report.html --reference hific --baselines bpg,bpg-x265
	@echo "demo: results in $(DEMO_OUT)/ (per_image.csv, summary.csv, recon/), report: $(DEMO_OUT)/report.html"

test: $(STAMP) browser postgres codec-tools
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
