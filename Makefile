# dsdrive_ros: build, model, demo and tests. On a fresh machine:
#     make demo     # venv + colcon build + model + replay of the sample bag
#     make test     # venv + colcon build + model + pytest over test/
# Every recipe runs under bash; the run-time environment is scripts/ros_env.sh (one definition
# for the Makefile, the tests and humans: `. scripts/ros_env.sh`).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.dsdrive-venv-stamp
# The CPU wheel of torch lies here on our machines; PyPI's torch is a multi-GB CUDA build.
TORCH_WHEELS ?= /opt/wheels
PIP_INSTALL := $(VENV_PY) -m pip install --disable-pip-version-check \
	$(if $(wildcard $(TORCH_WHEELS)/torch-*.whl),--find-links $(TORCH_WHEELS))

ROS_ENV := . scripts/ros_env.sh
BUILD_STAMP := install/.dsdrive-build-stamp
# Everything colcon installs (symlink-install links files one by one: a new file needs a rebuild).
BUILD_INPUTS := package.xml CMakeLists.txt $(wildcard msg/*.msg) \
	$(shell find dsdrive_ros scripts launch config models -type f \
	  -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)

# Upstream launch + launch_ros sources for the launch tests where no ROS 2 install provides them
# (read-only, beside the clone; scripts/ros_env.sh puts them on PYTHONPATH after any installed
# launch). launch_ros needs the composition_interfaces service package: built into install/.
LAUNCH_VENDOR ?= $(abspath ../shared/vendor/ros2-launch)
LAUNCH_STAMP := install/.dsdrive-launch-stamp

RANDOM_MODEL_DIR := build/models/random-tiny
MODEL_DIR ?= $(if $(wildcard models/dsdrive-tiny/planner.onnx),models/dsdrive-tiny,$(RANDOM_MODEL_DIR))
MODEL_INPUTS := $(wildcard export/to_onnx.py) \
	$(shell find dsdrive_ros/model dsdrive_ros/export -name '*.py' 2>/dev/null)

SAMPLE_DIR := samples/sample
SAMPLE_BAG ?= $(firstword $(wildcard samples/sample.mcap) $(SAMPLE_DIR))
DEMO_OUT ?= out/demo

PYTEST_ARGS ?=

.PHONY: help venv build rebuild launch-support model sample demo test towns-data towns-model clean distclean

help:
	@echo "make venv       .venv with the pinned ML + ROS 2 wheels (requirements*.txt)"
	@echo "make build      colcon build (msg/DrivingPlan.msg, Python package, scripts) into install/"
	@echo "make model      MODEL_DIR=$(MODEL_DIR) (random-weight tiny export until one is shipped)"
	@echo "make sample     synthetic sample bag in $(SAMPLE_DIR)"
	@echo "make demo       replay SAMPLE_BAG=$(SAMPLE_BAG) through the node into $(DEMO_OUT)"
	@echo "make test       pytest over test/ in the ROS environment (PYTEST_ARGS=...)"
	@echo "make towns-data   the towns datasets in data/ (#15; resumable, ~25 min on 2 cores)"
	@echo "make towns-model  the one-pass towns model in runs/towns-one-pass (resumable, ~1.5 h on 2 cores)"
	@echo "make clean      remove build/ install/ log/ out/   (distclean: and .venv)"

# ---------------------------------------------------------------------------------------- venv
venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt requirements-ros.txt
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt -r requirements-ros.txt
	touch $@

# --------------------------------------------------------------------------------------- build
build: $(BUILD_STAMP)

rebuild:
	rm -f $(BUILD_STAMP)
	$(MAKE) build

$(BUILD_STAMP): $(VENV_STAMP) $(BUILD_INPUTS)
	@# The wheels' exported CMake files point at their build container's Python: repoint them.
	PYINC=$$($(VENV_PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	NPINC=$$($(VENV_PY) -c 'import numpy; print(numpy.get_include())'); \
	{ grep -rlZ '/opt/python/cp311-cp311/' $(VENV)/share --include='*.cmake' || true; } | xargs -0 -r sed -i \
	  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$$NPINC#g" \
	  -e "s#/opt/python/cp311-cp311/include/python3.11#$$PYINC#g"
	DSDRIVE_NO_INSTALL=1 $(ROS_ENV) && colcon build --paths . --symlink-install \
	  --event-handlers console_cohesion+ \
	  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(abspath $(VENV))/bin/python3
	touch $@

# With neither an installed launch nor $(LAUNCH_VENDOR), the launch tests skip and say why.
launch-support: $(if $(wildcard $(LAUNCH_VENDOR)/README.md),$(LAUNCH_STAMP))

$(LAUNCH_STAMP): | $(BUILD_STAMP)
	DSDRIVE_NO_INSTALL=1 $(ROS_ENV) && colcon build \
	  --paths $(LAUNCH_VENDOR)/rcl_interfaces_repo/composition_interfaces \
	  --build-base build --install-base install --event-handlers console_cohesion+ \
	  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(abspath $(VENV))/bin/python3
	touch $@

# --------------------------------------------------------------------------------------- model
model: $(if $(filter $(RANDOM_MODEL_DIR),$(MODEL_DIR)),$(RANDOM_MODEL_DIR)/planner.onnx)
	@test -f $(MODEL_DIR)/planner.onnx -a -f $(MODEL_DIR)/config.json || { echo "no planner.onnx + config.json in MODEL_DIR=$(MODEL_DIR)" >&2; exit 1; }
	@echo "model: $(MODEL_DIR)"

# Until a trained model is shipped in models/dsdrive-tiny: random weights, tiny preset.
$(RANDOM_MODEL_DIR)/planner.onnx: $(MODEL_INPUTS) | $(VENV_STAMP)
	PYTHONPATH=$(CURDIR) $(VENV_PY) export/to_onnx.py --random --preset tiny --out $(RANDOM_MODEL_DIR)

# ---------------------------------------------------------------------------------------- demo
sample: $(SAMPLE_DIR)

$(SAMPLE_DIR): | $(BUILD_STAMP)
	$(ROS_ENV) && python scripts/make_sample_bag.py --out $(SAMPLE_DIR)

demo: build model $(SAMPLE_BAG)
	$(ROS_ENV) && dsdrive-replay $(SAMPLE_BAG) --model-dir $(MODEL_DIR) --out $(DEMO_OUT) --overwrite
	@echo
	@reports=$$(find $(DEMO_OUT) -maxdepth 1 -type f -iname 'report*' 2>/dev/null | sort); \
	if [ -n "$$reports" ]; then echo "demo report:"; echo "$$reports" | sed 's/^/  /'; \
	else echo "demo output in $(DEMO_OUT)/"; fi

# ---------------------------------------------------------------------------------------- test
# pytest's exit code 5 (no tests collected) fails the target like any other failure.
test: build model launch-support
	$(ROS_ENV) && export DSDRIVE_TEST_MODEL_DIR=$(abspath $(MODEL_DIR)) && \
	rc=0 && pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

# ------------------------------------------------------------------------ the towns model (#15)
# Long jobs, not part of `make test`. Both resume where a kill left them (datasets skip complete
# episodes, training resumes from its last checkpoint). The datasets are those of
# config/train_tiny_towns_one_pass.yaml: the training towns (never a validation or test town), two
# collections side by side, one per core.
TRAINING_TOWNS = $$(python -c 'from dsdrive_ros.sim.towns import TRAINING_TOWNS; print(",".join(TRAINING_TOWNS))')
BUILD_DATASET := python -m dsdrive_ros.data.build_dataset --focus-view --no-progress

towns-data: build
	$(ROS_ENV) && towns=$(TRAINING_TOWNS) && \
	{ $(BUILD_DATASET) --out data/towns-train --towns $$towns --episodes 80 --steps 450 --seed 21 & a=$$!; } && \
	{ $(BUILD_DATASET) --out data/sim-val --towns grid5,spider5 --episodes 2 --seed 2 && \
	  $(BUILD_DATASET) --out data/towns-starts --towns $$towns --episodes 200 --steps 20 --seed 4 && \
	  $(BUILD_DATASET) --out data/towns-starts2 --towns $$towns --episodes 400 --steps 20 --seed 6; } && \
	wait $$a

towns-model: towns-data
	$(ROS_ENV) && dsdrive-train --config config/train_tiny_towns_one_pass.yaml && \
	dsdrive-export --checkpoint runs/towns-one-pass/last --out runs/towns-one-pass/model

# --------------------------------------------------------------------------------------- clean
clean:
	rm -rf build install log out

distclean: clean
	rm -rf $(VENV)
