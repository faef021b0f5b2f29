# Source at the start of a command on the lent GPU machine (see docs/scaling.md, "GPU numbers"):
# unpacks the GL loaders and installs the carried wheels (.gl/, .whl/: git-ignored, made by
# benchmarks/device/fetch.sh on a machine with network), then sets the environment.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/benchmarks MUJOCO_GL=egl OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi -L
