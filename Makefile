# Two commands on a fresh machine: `make demo` (install everything, run the main job) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages: GL for OpenCV; EGL and Mesa (llvmpipe) for the headless GL renderer;
# espeak-ng for the demo's sentence; chromium for the viewer page's browser test.
DEB_PACKAGES := libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libglib2.0-0 espeak-ng chromium

.PHONY: demo test install system-packages train-audio2face clean

demo: install
	$(VENV)/bin/avatar demo -o out/demo

test: install
	$(PY) -m pytest -q

install: $(STAMP)

$(STAMP): pyproject.toml Makefile capture/model_files.py  # a new model file means `avatar setup` again
	@$(MAKE) --no-print-directory system-packages
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(VENV)/bin/avatar setup
	touch $(STAMP)

# Retrain the shipped speech-to-face weights from synthetic speech (see README: "Speech to face").
SPEECH_DATA := data/speech
train-audio2face: install
	@$(MAKE) --no-print-directory system-packages DEB_PACKAGES="$$(cat scripts/speech-packages.txt)"
	$(PY) scripts/make_speech_dataset.py --out $(SPEECH_DATA) --count 1500 --seed 0 --fps 60
	$(PY) scripts/train_audio2face.py --data $(SPEECH_DATA) --out assets/audio2face.safetensors --minutes 25 --seed 0

system-packages:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf $(VENV) out build *.egg-info
