# KubeArts developer entry points. The two that matter:
#   make demo   the environment, a local cluster, KubeArts from its Helm chart, and the offline
#               flow of examples/offline/ from data set to predictions
#   make test   the environment and every test (lint, types, unit, cluster, end to end)
#   make lock   re-resolve uv.lock after a dependency change and export the images' locks
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
IMAGES      := $(wildcard images/*/pyproject.toml)
CLUSTER     := PYTHONPATH=hack $(BIN)/python -m localcluster
KUBECTL      = $(shell bash hack/build-kubernetes.sh)/kubectl
KUBECONFIG  := $(CURDIR)/.localcluster/kubeconfig
PYTEST_ARGS ?=
UV          := UV_PYTHON_DOWNLOADS=never $(CURDIR)/$(BIN)/uv
# Each image's requirements.lock: its package's dependencies from the one resolution.
EXPORT      := --frozen --no-dev --no-emit-workspace
# Extras an image's requirements.lock is exported with, by image folder: the predictor's
# plain image runs ONNX Runtime's CPU build, its `cpu` extra.
EXPORT_EXTRAS_predictor := --extra cpu

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The environment is uv.lock, installed exactly. uv itself is locked there too; a new
# machine gets that very wheel with pip, hash-checked, before uv installs the rest.
# --locked stops with an error when pyproject.toml and uv.lock disagree (run `make lock`).
$(BIN)/uv: uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PYTHON) hack/uv_requirement.py >$(VENV)/uv-requirement.txt
	$(BIN)/pip install -q --no-deps --require-hashes -r $(VENV)/uv-requirement.txt
	touch $@

# The predictor's ONNX Runtime builds are extras that exclude each other (one module, two
# distributions): the environment has the CPU one, `cuda` is for the CUDA image.
$(BIN)/.installed: uv.lock pyproject.toml $(IMAGES) $(BIN)/uv
	$(UV) sync --locked --all-packages --all-extras --no-extra cuda
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## the development environment in .venv, exactly as uv.lock says

.PHONY: lock
lock: $(BIN)/uv ## re-resolve uv.lock after a pyproject.toml change (UPGRADE=1: newest releases), export image locks
	$(UV) lock $(if $(UPGRADE),--upgrade)
	$(UV) export $(EXPORT) --package kubearts -o requirements.lock >/dev/null
	$(foreach p,$(IMAGES),(cd $(dir $(p)) && $(UV) export $(EXPORT) \
	  --package kubearts-$(notdir $(patsubst %/,%,$(dir $(p)))) \
	  $(EXPORT_EXTRAS_$(notdir $(patsubst %/,%,$(dir $(p))))) -o requirements.lock >/dev/null);)
	# One predictor image per accelerator family, each with its own lock: TensorFlow (SavedModels,
	# with ONNX Runtime on CPUs), CUDA (onnxruntime-gpu with NVIDIA's CUDA and cuDNN wheels) and
	# CANN (onnxruntime-cann; the CANN toolkit comes from an image, see the predictor's README).
	cd images/predictor && $(UV) export $(EXPORT) --package kubearts-predictor \
	  --extra cpu --extra tensorflow -o requirements-tensorflow.lock >/dev/null
	cd images/predictor && $(UV) export $(EXPORT) --package kubearts-predictor --extra cuda \
	  -o requirements-cuda.lock >/dev/null
	# onnxruntime-cann needs NumPy 1: its own small resolution (images/predictor/cann/pyproject.toml).
	cd images/predictor/cann && $(UV) lock $(if $(UPGRADE),--upgrade) && $(UV) export --frozen \
	  --no-dev --no-emit-project --no-emit-local -o ../requirements-cann.lock >/dev/null

.PHONY: system-deps
system-deps: ## Debian packages: etcd, Go 1.15, kubernetes sources, iproute2, iptables, conntrack, ipset, chromium
	bash hack/install-system-deps.sh

.PHONY: kubernetes
kubernetes: system-deps ## build (once, cached) kube-apiserver & co from Debian's 1.20.2 sources
	bash hack/build-kubernetes.sh

.PHONY: cluster-up
cluster-up: venv kubernetes ## start the local cluster (.localcluster/kubeconfig); no-op if running
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## stop the local cluster; leaves no process, mount or network namespace
	@test ! -x $(BIN)/python || $(CLUSTER) down

.PHONY: cluster-status
cluster-status: ## show the local cluster's components
	$(CLUSTER) status

.PHONY: install-crds
install-crds: cluster-up ## apply crds/ and the default gallery to the local cluster
	$(KUBECTL) --kubeconfig $(KUBECONFIG) apply -f crds/
	$(KUBECTL) --kubeconfig $(KUBECONFIG) wait --for condition=established --timeout=60s -f crds/
	$(KUBECTL) --kubeconfig $(KUBECONFIG) create namespace kubearts-system --dry-run=client -o yaml \
	  | $(KUBECTL) --kubeconfig $(KUBECONFIG) apply -f -
	$(BIN)/python hack/gallery_configmap.py charts/kubearts/files/gallery/default.yaml \
	  | $(KUBECTL) --kubeconfig $(KUBECONFIG) apply -n kubearts-system -f -

.PHONY: demo
demo: cluster-up ## the environment, a local cluster, KubeArts from its chart and the offline flow to predictions
	$(BIN)/python hack/demo.py

.PHONY: lint
lint: venv ## ruff, ruff format and mypy (strict for the operator)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy operator/kubearts images/predictor/kubearts_predictor
	$(BIN)/python hack/sync_chart_crds.py --check

.PHONY: test-unit
test-unit: venv ## the pure tiers only
	$(BIN)/pytest -m "not cluster" $(PYTEST_ARGS)

.PHONY: test
test: venv kubernetes lint ## every test but the slow accuracy runs: lint, unit, cluster, end to end
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

.PHONY: test-slow
test-slow: venv kubernetes ## the slow runs: ResNet-50 on digits to its accuracy (minutes each)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

.PHONY: bench
bench: cluster-up ## pod start latency, dataset ingest (next to tar -x), trainer (next to bare fit), conversion (ORT next to TF), predictor (next to in-process ONNX Runtime)
	$(BIN)/python benchmarks/pod_start.py --kubeconfig $(KUBECONFIG)
	$(BIN)/python benchmarks/dataset_ingest.py
	$(BIN)/python benchmarks/trainer.py
	$(BIN)/python benchmarks/conversion.py
	$(BIN)/python benchmarks/predictor.py

.PHONY: clean
clean: cluster-down ## remove the environment and the local cluster's state
	rm -rf $(VENV) .localcluster
