#!/usr/bin/env bash
# A real subtensor localnet in docker, set up for this subnet.
#
#   scripts/subtensor_localnet.sh up      start the node, wait for blocks, create subnet + wallets
#   scripts/subtensor_localnet.sh start   start the node and wait for it (no set-up)
#   scripts/subtensor_localnet.sh setup   (re)run the set-up against a running node
#   scripts/subtensor_localnet.sh stop    stop and remove the container
#   scripts/subtensor_localnet.sh status  show the container and the chain head
#
# Environment: SUBTENSOR_IMAGE (default ghcr.io/opentensor/subtensor-localnet:devnet-ready,
# the image the bittensor docs use for local chains), SUBTENSOR_CONTAINER (subtensor-localnet),
# FAST_BLOCKS (1 = 0.25 s blocks, 0 = 12 s blocks), WAIT_S (120). Extra arguments after the
# command go to scripts/subtensor_localnet_setup.py (e.g. --miners 4 --tempo 20).
# Needs docker; the node's RPC listens on ws://127.0.0.1:9944 (and 9945 for the second authority).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${SUBTENSOR_IMAGE:-ghcr.io/opentensor/subtensor-localnet:devnet-ready}"
NAME="${SUBTENSOR_CONTAINER:-subtensor-localnet}"
FAST_BLOCKS="${FAST_BLOCKS:-1}"
WAIT_S="${WAIT_S:-120}"
ENDPOINT="ws://127.0.0.1:9944"
PYTHON="${PYTHON:-.venv/bin/python}"

die() { echo "error: $*" >&2; exit 1; }

need_docker() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed (https://docs.docker.com/get-docker/)"
  docker info >/dev/null 2>&1 || die "the docker daemon is not reachable (is it running? are you in the docker group?)"
}

chain_head() {
  # JSON-RPC over HTTP on the same port as the websocket; prints the best block number.
  curl -s -m 2 -H 'Content-Type: application/json' \
    -d '{"id":1,"jsonrpc":"2.0","method":"chain_getHeader","params":[]}' http://127.0.0.1:9944 \
    | "$PYTHON" -c 'import json,sys; print(int(json.load(sys.stdin)["result"]["number"], 16))' 2>/dev/null
}

start() {
  need_docker
  if docker ps --format '{{.Names}}' | grep -qx "$NAME"; then
    echo "container $NAME is already running"
  else
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    args=(run -d --rm --name "$NAME" -p 9944:9944 -p 9945:9945 "$IMAGE")
    [ "$FAST_BLOCKS" = "0" ] && args+=(False)  # the image's entrypoint takes False for 12 s blocks
    echo "starting $IMAGE as $NAME (fast blocks: $FAST_BLOCKS)"
    docker "${args[@]}" >/dev/null
  fi
  echo -n "waiting for blocks on $ENDPOINT "
  deadline=$((SECONDS + WAIT_S))
  while [ $SECONDS -lt $deadline ]; do
    head="$(chain_head || true)"
    if [ -n "$head" ] && [ "$head" -gt 1 ]; then
      echo " ok (block $head)"
      return 0
    fi
    echo -n "."
    sleep 2
  done
  echo
  docker logs --tail 30 "$NAME" >&2 || true
  die "no blocks after ${WAIT_S}s; see the container log above"
}

setup() {
  [ -x "$PYTHON" ] || die "$PYTHON not found; run scripts/setup.sh first"
  "$PYTHON" scripts/subtensor_localnet_setup.py --endpoint "$ENDPOINT" "$@"
}

stop() {
  need_docker
  docker rm -f "$NAME" >/dev/null 2>&1 && echo "stopped $NAME" || echo "$NAME was not running"
}

status() {
  need_docker
  docker ps --filter "name=^${NAME}$" --format 'container {{.Names}}: {{.Status}} ({{.Image}})'
  head="$(chain_head || true)"
  echo "chain head: ${head:-unreachable}"
}

cmd="${1:-up}"
shift || true
case "$cmd" in
  up) start; setup "$@" ;;
  start) start ;;
  setup) setup "$@" ;;
  stop) stop ;;
  status) status ;;
  *) die "unknown command $cmd (use up|start|setup|stop|status)" ;;
esac
