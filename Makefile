# The two entry points are `make run` and `make test`; both install what is
# missing, build incrementally and are safe to repeat.
BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
LISTEN     ?= 127.0.0.1:8080
DATA_DIR   ?= ./llmcache-data
UPSTREAM   ?= $(or $(LLMCACHE_UPSTREAM),http://127.0.0.1:11434/v1)
JOBS       ?= $(shell nproc)

.PHONY: all deps build test unit-test fuzz-test run bench clean

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

# The second build (clang, ASan + UBSan): the unit tests of the parsers of
# untrusted bytes run under the sanitizers, then each libFuzzer target runs
# for a bounded time on its seed corpus.
fuzz-test: fuzz-build
	ctest --test-dir $(FUZZ_BUILD) --output-on-failure -j $(JOBS)
	tools/run-fuzzers $(FUZZ_BUILD)

test: unit-test fuzz-test

run: build
	$(BUILD)/src/app/llmcache serve --listen $(LISTEN) --upstream $(UPSTREAM) --data-dir $(DATA_DIR)

bench: build
	bench/run-all

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
