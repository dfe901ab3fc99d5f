# The two commands of the README: `make demo` and `make test`.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS        ?= 2

.PHONY: all deps build demo test unit fuzz fuzz-build clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	./scripts/demo.sh $(BUILD)/bin

# Every test under ASan+UBSan with warnings as errors, then a bounded fuzzing run.
test: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DPILLION_SANITIZE=ON -DPILLION_WERROR=ON
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(BUILD_ASAN) --output-on-failure -j$(JOBS) --timeout 300
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-build: deps
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DPILLION_FUZZ=ON -DPILLION_TESTS=OFF -DPILLION_WERROR=ON
	cmake --build $(BUILD_FUZZ) -j$(JOBS) --target fuzz_policy_yaml fuzz_policy_json fuzz_detect fuzz_mesh fuzz_webhook fuzz_http1

# Runs each fuzz target for FUZZ_SECONDS on a scratch copy of its committed seed corpus.
fuzz: fuzz-build
	./scripts/fuzz.sh $(BUILD_FUZZ)/bin $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
