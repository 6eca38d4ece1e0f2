# Sourced by scripts/test.sh; also usable by hand:
#   source scripts/rabbitmq.sh && start_rabbitmq && cargo test -p herald amqp
# Installs Debian's rabbitmq-server if missing, starts a node of its own on free loopback
# ports (plain AMQP, and AMQP over TLS with a certificate for `localhost` from a CA made
# for the run), exports HERALD_TEST_AMQP_URL, HERALD_TEST_AMQPS_URL,
# HERALD_TEST_AMQPS_CA and HERALD_TEST_RABBITMQ_NODE for the tests, and stops the node
# when the shell exits.

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
  make_broker_certificates "$RABBIT_DIR/tls"
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

# A CA of the run's own and a certificate it issued for localhost (and 127.0.0.1), for
# the broker's TLS listener; the tests give Herald the CA with --tls-ca-file.
make_broker_certificates() {
  local dir="$1"
  if ! command -v openssl >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssl >/dev/null
  fi
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Herald test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$dir/server.ext"
  openssl x509 -req -days 2 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

try_start_rabbitmq() {
  local attempt="$1" port tls_port
  port="$(free_port)"
  tls_port="$(free_port)"
  export RABBITMQ_NODENAME="herald-test-$$-$attempt@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port"
  export RABBITMQ_DIST_PORT=$((port + 1)) ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia-$attempt" RABBITMQ_LOG_BASE="$RABBIT_DIR/log-$attempt"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
  echo "[]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  export RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq-$attempt.conf"
  cat >"$RABBITMQ_CONFIG_FILE" <<EOF
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $RABBIT_DIR/tls/ca.pem
ssl_options.certfile = $RABBIT_DIR/tls/server.pem
ssl_options.keyfile = $RABBIT_DIR/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
  # Debian's wrapper runs the node as the `rabbitmq` user when started by root.
  if [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$RABBIT_DIR"
  fi
  echo "== starting RabbitMQ on 127.0.0.1:$port (TLS on $tls_port)"
  rabbitmq-server -detached >"$RABBIT_DIR/start-$attempt.log" 2>&1 || return 1
  # `rabbitmqctl await_startup` can return before the listener is up: wait for the port.
  for _ in $(seq 1 90); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
      && (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null; then
      export HERALD_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
      # By name: the certificate is checked against `localhost`.
      export HERALD_TEST_AMQPS_URL="amqps://guest:guest@localhost:$tls_port/%2f"
      export HERALD_TEST_AMQPS_CA="$RABBIT_DIR/tls/ca.pem"
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

