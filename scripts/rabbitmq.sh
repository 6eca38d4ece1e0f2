# Sourced by scripts/test.sh; also usable by hand:
#   source scripts/rabbitmq.sh && start_rabbitmq && cargo test -p herald amqp
# Installs Debian's rabbitmq-server if missing, starts a node of its own on a free loopback
# port, exports HERALD_TEST_AMQP_URL and HERALD_TEST_RABBITMQ_NODE for the tests, and stops
# the node when the shell exits.

# A RabbitMQ node of our own on loopback, for the AMQP transport's tests; stopped on exit.
start_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "== installing rabbitmq-server"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  EPMD_WAS_RUNNING=0
  if command -v epmd >/dev/null 2>&1 && epmd -names >/dev/null 2>&1; then EPMD_WAS_RUNNING=1; fi
  RABBIT_DIR="$(mktemp -d -t herald-rabbitmq.XXXXXX)"
  trap stop_rabbitmq EXIT
  # A start can fail on a busy port (the distribution port is the AMQP port + 1): try a
  # few ports before giving up.
  local attempt
  for attempt in 1 2 3; do
    if try_start_rabbitmq "$attempt"; then
      return
    fi
    echo "RabbitMQ did not come up (attempt $attempt); its output:" >&2
    cat "$RABBIT_DIR/start-$attempt.log" "$RABBIT_DIR"/log-"$attempt"/*.log >&2 2>/dev/null || true
    rabbitmqctl -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
  done
  echo "RabbitMQ did not start" >&2
  exit 1
}

try_start_rabbitmq() {
  local attempt="$1" port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  export RABBITMQ_NODENAME="herald-test-$$-$attempt@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port"
  export RABBITMQ_DIST_PORT=$((port + 1)) ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia-$attempt" RABBITMQ_LOG_BASE="$RABBIT_DIR/log-$attempt"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
  echo "[]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  # Debian's wrapper runs the node as the `rabbitmq` user when started by root.
  if [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$RABBIT_DIR"
  fi
  echo "== starting RabbitMQ on 127.0.0.1:$port"
  rabbitmq-server -detached >"$RABBIT_DIR/start-$attempt.log" 2>&1 || return 1
  # `rabbitmqctl await_startup` can return before the listener is up: wait for the port.
  for _ in $(seq 1 90); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      export HERALD_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
      export HERALD_TEST_RABBITMQ_NODE="$RABBITMQ_NODENAME"
      return 0
    fi
    sleep 0.5
  done
  return 1
}

stop_rabbitmq() {
  rabbitmqctl -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
  # epmd (Erlang's port mapper) outlives the node; stop it if this run started it.
  [ "$EPMD_WAS_RUNNING" = 1 ] || epmd -kill >/dev/null 2>&1 || true
  rm -rf "$RABBIT_DIR"
}

