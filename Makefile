# tern — a thin layer over CMake. The two commands of the Quick start:
#   make demo   install missing Debian packages, build, run the tree reduction
#   make test   install missing Debian packages, build, run every test
# Also: make build | bench (tern vs Dask vs floors) | asan (address+undefined suite) | tsan
#       | fuzz [FUZZ_SECONDS=60] | docs (API reference, Doxygen) | format | clean
BUILD        ?= build
ASAN_BUILD   ?= build-asan
TSAN_BUILD   ?= build-tsan
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
CMAKE_FLAGS  ?=

.PHONY: all deps deps-clang deps-bench build demo test bench asan tsan fuzz docs format \
        format-check clean

all: build

deps:
	@scripts/deps.sh

deps-clang:
	@scripts/deps.sh clang libclang-rt-14-dev

deps-bench:
	@scripts/deps.sh python3-distributed python3-numpy python3-psutil

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD)

demo: build
	$(BUILD)/bin/tree_reduce

test: build
	@scripts/run-tests.sh $(BUILD)

# tern, Dask (Debian's python3-distributed) and the C/nng floors in one run; writes
# bench/results/latest.json and prints the comparison table.
bench: build deps-bench
	@scripts/bench.sh $(BUILD)

asan: deps deps-clang
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang \
	      -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=address,undefined $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  scripts/run-tests.sh $(ASAN_BUILD)

# ThreadSanitizer: everything built with TSan in $(TSAN_BUILD), plus the normal build, whose
# Criterion integration tests run against the TSan-built daemons (Criterion itself cannot run
# under TSan; see scripts/tsan.sh). Any TSan report fails it.
tsan: deps deps-clang build
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang \
	      -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=thread $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD)
	@scripts/tsan.sh $(BUILD) $(TSAN_BUILD)

fuzz: deps deps-clang
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang -DTERN_FUZZ=ON \
	      -DTERN_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD)
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The API reference from the public headers: $(BUILD)/docs/api/html/index.html
docs: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) --target docs

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
