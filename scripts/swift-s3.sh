#!/usr/bin/env bash
# A real S3-compatible store for tests and local trials: OpenStack Swift (Debian's swift-proxy,
# swift-account, swift-container, swift-object) with its s3api middleware, on 127.0.0.1.
#
#   scripts/swift-s3.sh start DIR [OWNER_PID]
#                         configure and start a one-node Swift in DIR (created, must be empty or
#                         absent); prints one line of JSON {"endpoint","region","accessKeyId",
#                         "secretAccessKey","pids"} (also written to DIR/endpoint.json) once it
#                         answers. With OWNER_PID, it stops by itself when that process is gone
#                         (a test run that was killed leaves no Swift behind).
#   scripts/swift-s3.sh stop DIR   stop it (by the pids it recorded) and remove DIR
#
# Everything it needs is in DIR (configs, rings, the one storage device, logs), so several can run
# side by side. One node, one device in a plain directory, one replica; no memcached, no
# rsync/replicators/updaters (nothing to replicate to). S3 credentials: tempauth user
# test:tester / testing; s3api location (the client's region) us-east-1. Encryption at rest is on
# (keymaster + encryption), so `x-amz-server-side-encryption: AES256` is accepted; `aws:kms` is not.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

stop() {
  [ -d "$dir" ] || return 0
  if [ -f "$dir/watchdog.pid" ] && [ "$(cat "$dir/watchdog.pid")" != "$$" ]; then kill -TERM "$(cat "$dir/watchdog.pid")" 2>/dev/null || true; fi
  if [ -f "$dir/pids" ]; then
    # Each server was started as the leader of its own session: end the whole group.
    for pid in $(cat "$dir/pids"); do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      alive=0
      for pid in $(cat "$dir/pids"); do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break
      sleep 0.1
    done
    for pid in $(cat "$dir/pids"); do kill -KILL -- "-$pid" 2>/dev/null || true; done
  fi
  rm -rf "$dir"
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
if [ "$cmd" = watch ]; then
  owner=${3:?}
  while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do sleep 2; done
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

for bin in swift-ring-builder swift-proxy-server swift-account-server swift-container-server swift-object-server; do
  command -v "$bin" >/dev/null || {
    echo "$bin not found: apt-get install -y --no-install-recommends swift-proxy swift-account swift-container swift-object" >&2
    exit 3
  }
done
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then echo "$dir is not empty" >&2; exit 2; fi
mkdir -p "$dir/etc" "$dir/node/d1" "$dir/log" "$dir/run" "$dir/cache"
dir=$(cd "$dir" && pwd)
trap 'rc=$?; [ $rc = 0 ] || { echo "swift did not start; logs:" >&2; tail -n 20 "$dir"/log/*.log >&2 || true; stop; }; exit $rc' EXIT

# Four free TCP ports (bound to port 0 and released: a tiny window in which another process could
# take one, reported as a start failure).
read -r p_proxy p_account p_container p_object < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')

# Swift reads swift.conf from swift_dir: the hash path prefix/suffix and the one storage policy.
cat >"$dir/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = tessera-test-$RANDOM$RANDOM
swift_hash_path_prefix = tessera-test-$RANDOM$RANDOM
[storage-policy:0]
name = Policy-0
default = yes
EOF

common() {
  cat <<EOF
[DEFAULT]
swift_dir = $dir/etc
devices = $dir/node
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = $1
workers = 0
log_name = $2
log_facility = LOG_LOCAL0
log_level = WARNING
# No syslog socket needed: Swift logs to this UDP address (nothing listens; stderr is the log).
log_address = /nonexistent
log_udp_host = 127.0.0.1
log_udp_port = 9
recon_cache_path = $dir/cache
EOF
}

{ common "$p_account" account; cat <<EOF
[pipeline:main]
pipeline = account-server
[app:account-server]
use = egg:swift#account
EOF
} >"$dir/etc/account-server.conf"

{ common "$p_container" container; cat <<EOF
[pipeline:main]
pipeline = container-server
[app:container-server]
use = egg:swift#container
EOF
} >"$dir/etc/container-server.conf"

{ common "$p_object" object; cat <<EOF
[pipeline:main]
pipeline = object-server
[app:object-server]
use = egg:swift#object
EOF
} >"$dir/etc/object-server.conf"

secret=$(head -c 32 /dev/urandom | base64 -w0)
{ common "$p_proxy" proxy; cat <<EOF
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl ratelimit s3api tempauth copy container-quotas account-quotas slo dlo versioned_writes symlink keymaster encryption proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:keymaster]
use = egg:swift#keymaster
encryption_root_secret = $secret
[filter:encryption]
use = egg:swift#encryption
[filter:cache]
use = egg:swift#memcache
# No memcached: a port nothing listens on fails at once (Swift then works without a cache).
memcache_servers = 127.0.0.1:1
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:ratelimit]
use = egg:swift#ratelimit
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
EOF
} >"$dir/etc/proxy-server.conf"

# Rings: one replica on the one device (part power 6: small and quick to build).
for ring in account:$p_account container:$p_container object:$p_object; do
  name=${ring%%:*}
  port=${ring##*:}
  swift-ring-builder "$dir/etc/$name.builder" create 6 1 1 >/dev/null
  swift-ring-builder "$dir/etc/$name.builder" add --region 1 --zone 1 --ip 127.0.0.1 --port "$port" --device d1 --weight 100 >/dev/null
  swift-ring-builder "$dir/etc/$name.builder" rebalance >/dev/null
done

: >"$dir/pids"
for server in account container object proxy; do
  # setsid: each server leads its own session, so `stop` ends it and anything it spawned.
  # -v: log to stderr (the log file) as well.
  setsid "swift-$server-server" "$dir/etc/$server-server.conf" -v </dev/null >"$dir/log/$server.log" 2>&1 &
  echo $! >>"$dir/pids"
done

endpoint="http://127.0.0.1:$p_proxy"
# Ready when every server answers HTTP (any status; the proxy's healthcheck says OK).
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/$2" 2>/dev/null)" != 000 ]; }
for _ in $(seq 1 300); do
  if up "$p_account" x && up "$p_container" x && up "$p_object" x && curl -fs -o /dev/null "$endpoint/healthcheck"; then
    ready=1
    break
  fi
  for pid in $(cat "$dir/pids"); do kill -0 "$pid" 2>/dev/null || { echo "a swift server exited during start" >&2; exit 1; }; done
  sleep 0.1
done
[ "${ready:-0}" = 1 ] || { echo "swift did not answer within 30 s" >&2; exit 1; }

if [ -n "${3:-}" ]; then
  setsid bash "$0" watch "$dir" "$3" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/watchdog.pid"
fi

json="{\"endpoint\":\"$endpoint\",\"region\":\"us-east-1\",\"accessKeyId\":\"test:tester\",\"secretAccessKey\":\"testing\",\"pids\":[$(paste -sd, "$dir/pids")]}"
echo "$json" >"$dir/endpoint.json"
echo "$json"
