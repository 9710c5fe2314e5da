#!/usr/bin/env bash
# Task Bench graphs on this machine: floor, tern and Dask, METG(50 %) per pattern.
#   bench/taskbench/run.sh BUILD_DIR [--quick] [--systems floor,tern,dask] [--patterns LIST]
#                          [--build-dir [LABEL=]DIR]... [--rounds N] [--cluster local|tcp]
# The work (and the cleanup of every process it starts) is run.py's; see its --help and
# bench/README.md ("Task Bench graphs").
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" "$@"
