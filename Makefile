# Trunkline — one entry point. `make help` lists the targets.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY := $(UV) run --frozen
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

uv: ## Install uv if missing (pip, user site)
	@command -v uv >/dev/null 2>&1 || test -x "$(HOME)/.local/bin/uv" || python3 -m pip install --user --quiet uv

install: uv ## Create .venv with every member and dev tool from uv.lock, generate the contracts, build helm + Jaeger + the envtest API server (Go, cached), build llama.cpp for this CPU
	$(UV) sync --frozen --all-packages -p python3.11
	$(MAKE) proto
	$(MAKE) tools
	UV=$(UV) $(PY) python tools/llama_build.py

tools: ## Build helm, Jaeger, the LiveKit server, LiveKit SIP and kube-apiserver + etcd (operator tests) from the Go module proxy once, cached under ~/.cache/trunkline/tools/<name>-<version>; vendor livekit-client (npm) for the LiveKit caller page
	$(MAKE) --no-print-directory sip-deps
	$(PY) python tools/go_tools.py build
	$(PY) python tools/envtest_build.py
	$(PY) python tools/livekit_client.py
	$(MAKE) --no-print-directory browser

sip-deps: ## Debian packages LiveKit SIP's cgo build needs (opus, opusfile, soxr, pkg-config) and sip-tester (sipp: the SIP test's caller), installed with apt-get only when missing
	@missing="$$($(PY) python tools/go_tools.py apt)"; command -v sipp >/dev/null 2>&1 || missing="$$missing sip-tester"; \
	if [ -n "$${missing// /}" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

browser: ## Debian chromium for the console's browser tests (Playwright drives /usr/bin/chromium), installed with apt-get only when missing
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

crds: ## Regenerate the chart's CRDs from the AgentSpec and AgentRollout models (a test fails when they drift)
	$(PY) python tools/gen_crds.py

proto: ## Generate Python (+ .pyi) from proto/ into libs/proto (not committed)
	$(PY) python tools/gen_proto.py

lint: ## ruff, ruff format --check, mypy strict, import-linter, hadolint, buf lint + buf breaking vs main
	$(PY) ruff check .
	$(PY) ruff format --check .
	$(PY) hadolint Dockerfile
	$(PY) mypy libs/*/src services/*/src operators/*/src cli/src tools benchmarks
	$(PY) lint-imports
	cd proto && $(PY) buf lint
	$(MAKE) --no-print-directory breaking

breaking: ## buf breaking against main (skipped when main has no proto/ yet)
	@if git rev-parse --verify -q main >/dev/null && git ls-tree -d main proto >/dev/null 2>&1 && [ -n "$$(git ls-tree main proto)" ]; then \
		cd proto && $(PY) buf breaking --against '../.git#branch=main,subdir=proto' && echo "buf breaking: no breaking change against main"; \
	else echo "no proto/ on main yet: nothing to compare"; fi

fmt: ## Format and autofix
	$(PY) ruff format .
	$(PY) ruff check --fix .

test: ## All tests: unit, integration and e2e (starts its own NATS/Redis)
	$(PY) python -m pytest $(PYTEST_ARGS)

test-unit: ## Unit tests only
	$(PY) python -m pytest -m unit $(PYTEST_ARGS)

test-integration: ## Integration tests only
	$(PY) python -m pytest -m integration $(PYTEST_ARGS)

up: ## Start the local stack (NATS, Redis, OTLP sink, every service) and wait until healthy
	$(PY) trunkline stack up

down: ## Stop what `make up` started (and only that)
	$(PY) trunkline stack down

status: ## Health of every component of the local stack
	$(PY) trunkline stack status

demo: install ## The main job: bring the stack up and run a call through every service
	$(PY) trunkline demo

EVAL_ARGS ?=
eval: ## Conversation eval: every agents/*/eval scenario, one call each, through a stack it brings up; report in .run/eval
	$(PY) trunkline eval --out .run/eval $(EVAL_ARGS)

bench: ## Run every benchmark (tables printed, JSON under benchmarks/results)
	$(PY) python -m benchmarks

bench-models: ## Embedded STT latency per utterance length and TTS time to first audio
	$(PY) python -m benchmarks.models

bench-llm: ## LLM warm TTFT, cancelled speculative start cost, prompt tokens reused per turn
	$(PY) python -m benchmarks.llm

bench-context: ## Context service at 10k and 100k chunks: ingest, Resolve per stage, cache, recall
	$(PY) python -m benchmarks.context

bench-voice: ## Voice loop: 20+ real-time turns through the stack vs in one process vs a LiveKit caller through the stack
	$(PY) python -m benchmarks.voice

bench-voice-long: ## A 13-turn call (long utterances, off-topic, a phone number, goodbye), quiet vs a CPU hog: v2v per class and turn
	$(PY) python -m benchmarks.voice.conversation

bench-voice-long-stack: ## bench-voice-long through the full distributed stack
	$(PY) python -m benchmarks.voice.conversation --distributed --out benchmarks/results/voice-long-stack.json

bench-peers: ## Side by side with Pipecat 1.14 (own venv under ~/.cache/trunkline): same models, same caller, alternating calls
	$(PY) python -m benchmarks.peers

bench-voice-calls: ## Concurrent cache-answered calls in one gateway process: v2v, CPU, memory, late frames
	$(PY) python -m benchmarks.voice.concurrency

bench-voice-calls-models: ## Concurrent calls whose answers need the models (STT, MiniLM, SmolLM2, Piper in one process, cache off): v2v, CPU, memory, late frames
	$(PY) python -m benchmarks.voice.model_calls

bench-livekit: ## LiveKit transport beside the Twilio media stream on the same turns (fake peers, real livekit-server), and 20 rooms at once
	$(PY) python -m benchmarks.livekit

bench-turn: ## Semantic end of turn (Smart Turn v3.2): inference ms, early ends on complete questions, false cut-offs at mid-sentence pauses
	$(PY) python -m benchmarks.turn

bench-answers: ## Knowledge answers: extractive vs raw vs guarded LLM on 40 questions (right answers, grounded clauses, first-clause latency)
	$(PY) python -m benchmarks.answers

bench-redaction: ## PII redaction: precision/recall per entity on the labelled set and its hold-out, redact() time
	$(PY) python -m benchmarks.redaction

redteam: ## Red-team report: 40+ prompt injections (documents, CRM fields, tool results, the caller) through the real screens, tool executor and output check
	$(PY) python -m benchmarks.redteam

bench-stt: ## STT on phone-band speech: WER with/without the agent's vocabulary, latency, confidence
	$(PY) python -m benchmarks.stt

bench-hitl: ## hitl approval round trip (request -> console sees it, approve -> gateway sees it) and handoff accept, 1 and 10 in flight
	$(PY) python -m benchmarks.hitl

bench-ledger: ## Cost report over 1,000 synthetic calls on SQLite and PostgreSQL (target < 1 s), ledger writes per second
	$(PY) python -m benchmarks.ledger

check: install ## Install, then lint and every test (what CI runs)
	$(MAKE) lint
	$(MAKE) test

.PHONY: help uv install tools sip-deps browser crds proto lint breaking fmt test test-unit test-integration up down status demo eval bench bench-models bench-llm bench-context bench-voice bench-voice-long bench-voice-calls bench-peers bench-turn bench-answers bench-stt bench-redaction bench-hitl bench-ledger bench-livekit redteam check
