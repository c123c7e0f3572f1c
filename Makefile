# Convenience front end to CMake; see README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
# Suites run one at a time unless asked (make test TEST_JOBS=6): each starts
# its own daemons, and timing checks are kinder on a quiet machine.
TEST_JOBS ?= 1

.PHONY: build run test sanitize deb clean

build:
	@.ci/deps build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The quick start: this host's containers into ./registry.json.
run: build
	$(BUILD)/registrar run -B file://$(CURDIR)/registry.json

test:
	@.ci/deps test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(TEST_JOBS)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize:
	@.ci/deps test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DREGISTRAR_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(TEST_JOBS)

# The Debian package, $(BUILD)/registrar_<version>_<arch>.deb (docs/install.md).
deb: build
	cd $(BUILD) && cpack -G DEB

clean:
	rm -rf $(BUILD) build-asan
