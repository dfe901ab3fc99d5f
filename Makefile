# The two commands of the README: `make demo` and `make test`.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS        ?= 2

.PHONY: all build demo test unit fuzz fuzz-build images images-smoke clean

all: build

# Release-style build of the five binaries; only the build packages are installed.
build:
	./scripts/install-deps.sh build
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPILLION_TESTS=OFF
	cmake --build $(BUILD) -j$(JOBS)

demo:
	./scripts/install-deps.sh demo
	$(MAKE) build
	./scripts/demo.sh $(BUILD)/bin

# Every test under ASan+UBSan with warnings as errors, then a bounded fuzzing run. The tests run
# with TMPDIR set to an empty folder that must still be empty at the end: tests leave nothing behind.
test:
	./scripts/install-deps.sh test
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DPILLION_SANITIZE=ON -DPILLION_WERROR=ON
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	./scripts/run-tests.sh $(BUILD_ASAN) $(JOBS)
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-build:
	./scripts/install-deps.sh test
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DPILLION_FUZZ=ON -DPILLION_TESTS=OFF -DPILLION_WERROR=ON
	cmake --build $(BUILD_FUZZ) -j$(JOBS) --target fuzz_policy_yaml fuzz_policy_json fuzz_detect fuzz_mesh fuzz_webhook fuzz_http1 \
		fuzz_request_path fuzz_h2 fuzz_h2h1

# Runs each fuzz target for FUZZ_SECONDS on a scratch copy of its committed seed corpus.
fuzz: fuzz-build
	./scripts/fuzz.sh $(BUILD_FUZZ)/bin $(FUZZ_SECONDS)

# The four images from the Dockerfile, on a debian:bookworm base made locally with debootstrap
# when none is present, then a smoke test of each (scripts/images.sh).
images:
	./scripts/install-deps.sh images
	./scripts/images.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
