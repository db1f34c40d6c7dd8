#!/bin/sh
# Installs the Debian packages cnnlua needs to build, test and train, when any is missing.
# As root it runs apt-get itself; otherwise it prints the command to run.
#   sh tools/deps.sh          what building, testing and training need
#   sh tools/deps.sh bench    that and PyTorch, the reference of the benchmark (make bench)
set -e
PACKAGES="build-essential pkg-config lua5.4 liblua5.4-dev libopenblas-dev libstb-dev libcjson-dev
zlib1g-dev libreadline-dev lua-busted lua-argparse luajit python3 python3-numpy dataset-fashion-mnist
openmpi-bin libopenmpi-dev"
[ "$1" = bench ] && PACKAGES="$PACKAGES python3-torch"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "cnnlua: installing missing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
    echo "cnnlua: not root; run: sudo apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
