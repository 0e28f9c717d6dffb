# Set-up and everyday commands. `make demo` and `make test` each work on a fresh Debian machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
APT    := kallisto bedtools samtools
TORCH  ?= torch==2.13.0
WHEELS ?= .wheels
# The one place the pinned Nextflow version is stated (assets/nextflow/pom.xml says why 24.10.0).
NEXTFLOW_VERSION := 24.10.0
NXF    := .nextflow-bin/nextflow

.PHONY: setup nextflow demo test test-slow test-pipeline test-all lint benchmark benchmark-real clean

$(VENV)/.installed: pyproject.toml
	@missing=""; for t in kallisto bedtools samtools; do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT); \
	fi
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip download -q -d $(WHEELS) "$(TORCH)"  # kept: the training image installs from it
	$(VENV)/bin/pip install -q --no-index --find-links $(WHEELS) "$(TORCH)"
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# scanpy in a venv of its own, for one test: reading the simulated 10x h5 as its users do
# (scanpy's pins would move pandas, and so the pinned outputs, in the main venv).
SCANPY_VENV ?= .venv-scanpy
$(SCANPY_VENV)/.installed:
	python3 -m venv $(SCANPY_VENV)
	$(SCANPY_VENV)/bin/pip install -q "scanpy>=1.9"
	touch $@

# MultiQC in a venv of its own, for the tests that run it on finished run folders as nf-core
# users do (its dependencies would move the pinned ones of gexp's venv, as scanpy's would).
MULTIQC_VENV ?= .venv-multiqc
MULTIQC := GEXP_MULTIQC=$(MULTIQC_VENV)/bin/multiqc GEXP_MULTIQC_REQUIRED=1
$(MULTIQC_VENV)/.installed:
	python3 -m venv $(MULTIQC_VENV)
	$(MULTIQC_VENV)/bin/pip install -q "multiqc==1.35"
	touch $@

# Nextflow from Maven Central (no get.nextflow.io, no plugin registry): jars + launcher script.
$(NXF): assets/nextflow/pom.xml assets/nextflow/nextflow.sh Makefile
	@command -v mvn >/dev/null || { echo "make nextflow: needs Maven (apt-get install maven) and Java 17+" >&2; exit 1; }
	rm -rf .nextflow-bin.tmp && mkdir -p .nextflow-bin.tmp
	mvn -q -B -f assets/nextflow/pom.xml -Dnextflow.version=$(NEXTFLOW_VERSION) \
	  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.nextflow-bin.tmp/lib
	cp assets/nextflow/nextflow.sh .nextflow-bin.tmp/nextflow
	rm -rf .nextflow-bin && mv .nextflow-bin.tmp .nextflow-bin
	$(NXF) -version | grep -q "version $(NEXTFLOW_VERSION)"

nextflow: $(NXF)  ## Nextflow $(NEXTFLOW_VERSION) from Maven Central → .nextflow-bin/nextflow

# The samplesheet is written last, so it marks a finished simulation: a second `make demo`
# keeps the cohort (same files, same mtimes) and `gexp run` resumes every step in seconds.
demo/sim/samplesheet.csv: | $(VENV)/.installed
	$(VENV)/bin/gexp simulate --outdir demo/sim

demo: setup demo/sim/samplesheet.csv  ## simulate a cohort and run the whole pipeline on it
	$(VENV)/bin/gexp run --input demo/sim/samplesheet.csv \
	  --transcriptome demo/sim/reference/transcripts.fa.gz \
	  --gtf demo/sim/reference/genes.gtf.gz --chrom-sizes demo/sim/reference/chrom.sizes \
	  --outdir demo/results

# Three tiers; .ci/run runs all of them. `make test` is the everyday one (under 10 minutes on
# 2 cores once the venv exists): unit and integration tests with the real kallisto, bedtools and
# headless Chromium, sharing one simulated `gexp run` per session (tests/conftest.py).
CHROMIUM := @command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: setup $(SCANPY_VENV)/.installed $(MULTIQC_VENV)/.installed  ## lint, then every test but the slow ones
	$(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	GEXP_SCANPY_PYTHON=$(SCANPY_VENV)/bin/python $(MULTIQC) $(PY) -m pytest -m "not slow and not pipeline" --durations=15

# The slow end-to-end checks (tests marked `slow`): model quality on the simulator, the real
# cohort subset, whole `gexp run`s with SIGKILL and resume, fetching from a local server.
test-slow: setup  ## the slow end-to-end checks: model quality, real data, whole runs, SIGKILL
	$(CHROMIUM)
	$(PY) -m pytest -m "slow and not pipeline" --durations=15

# The real Nextflow runs (tests marked `pipeline`): the test profile with the local executor,
# -stub runs, every profile, podman and Docker containers and a one-node slurm cluster. Installs
# podman, runc, docker.io, debootstrap, slurm-wlm and munge (root); starts and stops dockerd and
# the cluster itself.
PIPELINE_APT := podman runc docker.io debootstrap slurm-wlm munge
test-pipeline: setup $(NXF) $(MULTIQC_VENV)/.installed  ## the real nextflow run: local, -stub, profiles, podman, docker, slurm
	@missing=""; for t in podman runc dockerd debootstrap slurmctld munged; do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(PIPELINE_APT); \
	fi
	GEXP_PIPELINE_TESTS=required $(MULTIQC) $(PY) -m pytest -m pipeline --durations=15

test-all: test test-slow test-pipeline  ## all three tiers, as .ci/run does

benchmark: setup  ## genome-wide benchmarks → benchmarks/results.md (about 10 minutes)
	$(PY) benchmarks/run.py

# Both real cohorts: the shared blood cohort, and its seven progenitors with one consensus peak set
# quantile-normalised across samples (benchmarks/make_progenitors.py; the hard kind, issue 16).
benchmark-real: setup  ## every model on the real cohorts → benchmarks/real.md, real_progenitors.md
	$(PY) benchmarks/real.py $(if $(COHORT),--cohort $(COHORT))
	$(PY) benchmarks/make_progenitors.py
	$(PY) benchmarks/real.py --cohort benchmarks/cohorts/corces2016_progenitors \
	  --out benchmarks/real_progenitors.md --notes benchmarks/real_progenitors.notes.md

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf demo .pytest_cache
