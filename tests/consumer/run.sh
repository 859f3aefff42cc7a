#!/usr/bin/env bash
# Builds and runs the consumer project twice: against DeepPrompt installed into a temporary
# prefix (find_package(deepprompt CONFIG REQUIRED)), and with add_subdirectory of the source.
# usage: tests/consumer/run.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work"
log=$work/log.txt
cmake -S "$src" -B "$work/build" -DDEEPPROMPT_BUILD_TESTS=OFF -DDEEPPROMPT_BUILD_EXAMPLES=OFF \
      -DDEEPPROMPT_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >> "$log"
cmake --install "$work/build" >> "$log"
cmake -S "$src/tests/consumer" -B "$work/installed" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_BUILD_TYPE=Release >> "$log"
cmake --build "$work/installed" >> "$log"
"$work/installed/consumer"
cmake -S "$src/tests/consumer" -B "$work/subdir" -DDEEPPROMPT_SOURCE_DIR="$src" -DCMAKE_BUILD_TYPE=Release >> "$log"
cmake --build "$work/subdir" >> "$log"
"$work/subdir/consumer"
