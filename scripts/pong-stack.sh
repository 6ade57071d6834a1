#!/bin/sh
# Pong through a manager:  scripts/pong-stack.sh start|stop|status
# The implementation comes from PONG_MANAGER_IMPL, else BEACH_MANAGER_IMPL (environment or
# .env), default rewrite.  It sets, as the plan describes:
#   PONG_DOCKER_SERVICE        beach-manager-rewrite | beach-manager
#   PRIVATE_BEACH_MANAGER_URL  the service URL inside the stack (scripts/manager-url)
# With rewrite, `start` brings up the smoke stack (scripts/stack up --pong: Road, Redis,
# PostgreSQL, two managers, two hosts, a Pong host and a controller agent playing it, each in
# its own network namespace; no Docker) and waits until the agent has played.  The legacy
# manager is not part of this repository: with legacy the script says where to run it.
set -eu
cd "$(dirname "$0")/.."
impl=${PONG_MANAGER_IMPL:-}
if [ -z "$impl" ]; then
  PRIVATE_BEACH_MANAGER_URL=$(scripts/manager-url)
  case "$PRIVATE_BEACH_MANAGER_URL" in
    *beach-manager-rewrite*) impl=rewrite ;;
    *) impl=legacy ;;
  esac
else
  PRIVATE_BEACH_MANAGER_URL=$(BEACH_MANAGER_IMPL=$impl scripts/manager-url)
fi
case "$impl" in
  rewrite) PONG_DOCKER_SERVICE=beach-manager-rewrite ;;
  legacy)  PONG_DOCKER_SERVICE=beach-manager ;;
  *) echo "pong-stack: PONG_MANAGER_IMPL must be legacy or rewrite, got '$impl'" >&2; exit 2 ;;
esac
export PONG_DOCKER_SERVICE PRIVATE_BEACH_MANAGER_URL
MANAGER_URL=$PRIVATE_BEACH_MANAGER_URL; export MANAGER_URL
echo "pong-stack: impl $impl, service $PONG_DOCKER_SERVICE, PRIVATE_BEACH_MANAGER_URL=$PRIVATE_BEACH_MANAGER_URL"
if [ "$impl" = legacy ]; then
  echo "pong-stack: the legacy manager ($PONG_DOCKER_SERVICE, Rust) lives in the Beach repository;" \
       "run its own pong-stack.sh there, or set BEACH_MANAGER_IMPL=rewrite (docs/migration.md)" >&2
  exit 2
fi
case "${1:-}" in
  start)
    scripts/stack up --pong
    scripts/stack pong --wait 90 ;;
  stop)   scripts/stack down ;;
  status) scripts/stack status && scripts/stack pong ;;
  *) echo "usage: scripts/pong-stack.sh start|stop|status" >&2; exit 2 ;;
esac
