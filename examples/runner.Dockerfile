# A runner image with a container hook. Build it with the release archives as the context:
#
#   cargo xtask dist
#   docker build -f examples/runner.Dockerfile -t registry.example.com/ci/runner-k8s-hook:0.1.0 dist/
#
# (--build-arg HOOK=docker-hook for the docker hook). Pin RUNNER_IMAGE to a runner version in
# production. crates/docker/tests/docs.rs builds this file and runs the hook the way the runner does.
ARG RUNNER_IMAGE=ghcr.io/actions/actions-runner:latest
FROM ${RUNNER_IMAGE}

ARG HOOK=k8s-hook
ARG HOOK_VERSION=0.1.0
ARG TARGET=x86_64-unknown-linux-gnu

# ADD unpacks a local .tar.gz: the archive holds <hook>/<hook>, <hook>/index.sh, LICENSE, README.md.
ADD ${HOOK}-${HOOK_VERSION}-${TARGET}.tar.gz /home/runner/

# The runner only accepts a hook path ending in .sh, .js or .ps1: point it at the launcher.
# (ARC's chart sets this variable in the pod for containerMode kubernetes; set it in the Helm
# values too, see docs/arc.md — a pod's env wins over the image's.)
ENV ACTIONS_RUNNER_CONTAINER_HOOKS=/home/runner/${HOOK}/index.sh
