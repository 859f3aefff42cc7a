#!/usr/bin/env bash
# Installs DeepPrompt into a temporary prefix, then configures, builds and runs the consumer
# project against it with find_package(deepprompt CONFIG REQUIRED).
# usage: tests/consumer/run.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
rm -rf "$work"
cmake -S "$src" -B "$work/build" -DDEEPPROMPT_BUILD_TESTS=OFF -DDEEPPROMPT_BUILD_EXAMPLES=OFF \
      -DDEEPPROMPT_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" > "$work.log"
cmake --install "$work/build" >> "$work.log"
cmake -S "$src/tests/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_BUILD_TYPE=Release >> "$work.log"
cmake --build "$work/consumer" >> "$work.log"
"$work/consumer/consumer"
