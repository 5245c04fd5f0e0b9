#!/usr/bin/env bash
# Launcher for the GitHub Actions runner: ACTIONS_RUNNER_CONTAINER_HOOKS must name a file ending
# in .sh, .js or .ps1, and the runner starts a .sh hook as `bash -e <path>` (or `sh -e <path>`).
# This execs the binary next to this file, passing stdin, arguments and the exit code through,
# and tells it which folder it was started from (the k8s hook's `k8s` folder means volume mode).
dir="$(dirname "$(readlink -f "$0")")"
CONTAINER_HOOKS_LAUNCHER_DIR="$dir"
export CONTAINER_HOOKS_LAUNCHER_DIR
exec "$dir/@BIN@" "$@"
