#!/usr/bin/env bash
# Launcher for the GitHub Actions runner: ACTIONS_RUNNER_CONTAINER_HOOKS must name a file ending
# in .sh, .js or .ps1, and the runner starts a .sh hook as `bash -e <path>` (or `sh -e <path>`).
# This execs the binary next to this file, passing stdin, arguments and the exit code through.
exec "$(dirname "$(readlink -f "$0")")/@BIN@" "$@"
