# The two entry points are `make run` and `make test`; both install what is
# missing, build incrementally and are safe to repeat.
BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
SAN_BUILD  ?= build-asan
LISTEN     ?= 127.0.0.1:8080
DATA_DIR   ?= ./llmcache-data
UPSTREAM   ?= $(or $(LLMCACHE_UPSTREAM),http://127.0.0.1:11434/v1)
JOBS       ?= $(shell nproc)

.PHONY: all deps build test unit-test fuzz-test sanitize-test run bench clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(FUZZ_BUILD)/build.ninja:
	CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMCACHE_FUZZ=ON

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

unit-test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# Each libFuzzer target runs for a bounded time on its seed corpus.
fuzz-test: fuzz-build
	tools/run-fuzzers $(FUZZ_BUILD)

# The second build: ASan + UBSan over the modules that parse untrusted bytes
# (HTTP, SSE, requests, GGUF, tokenizers, snapshots) or share state between
# threads (stores, metrics, the vector index). The end-to-end and model suites
# stay in the plain build, to keep CI within its time budget.
SAN_TARGETS ?= common_test http_test gateway_core_test metrics_test store_test \
               engine_test vector_index_test guard_test
$(SAN_BUILD)/build.ninja:
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DLLMCACHE_SANITIZE=ON -DLLMCACHE_BUILD_BENCH=OFF

sanitize-test: deps $(SAN_BUILD)/build.ninja
	cmake --build $(SAN_BUILD) -j $(JOBS) --target $(SAN_TARGETS)
	ctest --test-dir $(SAN_BUILD) --output-on-failure -j $(JOBS) \
	  -E '_NOT_BUILT|^E2e|DevsetPairsUpToDate'

test: unit-test fuzz-test sanitize-test

run: build
	$(BUILD)/src/app/llmcache serve --listen $(LISTEN) --upstream $(UPSTREAM) --data-dir $(DATA_DIR)

bench: build
	bench/run-all

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(SAN_BUILD)
