# A runner image with the container hooks: GitHub's runner image plus the overlay that
# `cargo xtask dist` writes. Build it with dist/ as the context:
#
#   cargo xtask dist
#   docker build -f examples/runner.Dockerfile -t registry.example.com/ci/runner-hooks:0.1.0 dist/
#
# The overlay replaces the hooks of /home/runner/k8s (ARC's containerMode kubernetes: volume
# mode) and /home/runner/k8s-novolume (kubernetes-novolume: copy mode), where ARC's chart already
# points ACTIONS_RUNNER_CONTAINER_HOOKS, and adds /home/runner/docker (the docker hook): no env
# var or chart value changes. Pin RUNNER_IMAGE to a runner version in production.
# crates/docker/tests/docs.rs builds this file and starts each launcher the way the runner does.
ARG RUNNER_IMAGE=ghcr.io/actions/actions-runner:latest
FROM ${RUNNER_IMAGE}

# ADD unpacks a local .tar.gz: home/runner/{k8s,k8s-novolume,docker}/ with index.js, index.sh,
# LICENSE and the hook binary (k8s-novolume's is a link to k8s's). The archive holds only those
# folders, so /home/runner itself keeps its owner.
ADD container-hooks-overlay.tar.gz /
