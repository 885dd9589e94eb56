# meshstage: two entry points, `make demo` and `make test`; everything else is set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COLLECTION_LINK := build/collections/ansible_collections/meshstage/mesh
# Upstream CRDs validate what is rendered; they sit beside the clone in ../shared.
CRD_DIR ?= $(abspath ../shared/reference/crds)
DEMO_GITOPS := build/demo/gitops
ENVIRONMENTS := dev staging prod
# The demo creates each environment directly at its stage, with no Prometheus: the stage gates
# refuse that (a new environment starts at permissive_mtls; strict mTLS and authorization
# need observed traffic), so the demo forces them, and each runbook records it.
DEMO_FORCE := '{"mesh_force_gates": ["order", "strict_mtls", "authorization"]}'
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# The host sidecar tests scrape with a real Prometheus (the Debian package); we run as root.
PROMETHEUS := $(shell command -v prometheus 2>/dev/null)

.PHONY: demo test lint golden analyzers-doc venv clean prometheus bench

venv: $(STAMP) $(COLLECTION_LINK)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

demo: venv
	$(BIN)/ansible-playbook $(foreach env,$(ENVIRONMENTS),-i inventories/$(env)) \
	  playbooks/migrate.yml -e mesh_gitops_dir=$(CURDIR)/$(DEMO_GITOPS) -e $(DEMO_FORCE) \
	  $(if $(wildcard $(CRD_DIR)),-e mesh_crd_dir=$(CRD_DIR))
	@echo; git -C $(DEMO_GITOPS) log --oneline | head -n 10

test: venv prometheus
	$(BIN)/pytest -n 2 --dist loadfile tests

prometheus:
ifeq ($(PROMETHEUS),)
	apt-get update -qq
	# RUNLEVEL=1: install the binary, do not start the packaged service
	DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends prometheus
endif

golden: venv
	$(BIN)/pytest -q tests/test_golden.py --update-golden

analyzers-doc: venv
	$(BIN)/pytest -q tests/unit/plugins/module_utils/analyze/test_analyze_catalogue.py \
	  --update-analyzers-doc

# The benchmark of docs/performance.md (takes long: the Ansible baseline at 1,000 services).
bench: venv
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run.py --services 100 1000 5000 --baseline 100 1000 \
	  --markdown build/bench-results.md --json build/bench.json --plot docs/performance.png

lint: venv
	$(BIN)/ruff check plugins tests bench
	$(BIN)/mypy
	$(BIN)/ansible-lint --profile production

clean:
	rm -rf build
