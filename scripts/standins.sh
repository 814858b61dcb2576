#!/usr/bin/env bash
# Local AWS stand-ins for Fineo: kinesalite (Kinesis), dynalite (DynamoDB)
# and gofakes3 (S3), each on 127.0.0.1 with a free port, in memory.
#
#   eval "$(scripts/standins.sh start)"   # start them; export the AWS_* variables
#   fineo demo                            # now with its streaming part
#   scripts/standins.sh stop              # stop them
#
# `start` prints the exports (endpoints, dummy credentials, region) and
# writes them to $FINEO_STANDINS_DIR/env too. Needs node (and `npm ci` run
# once in the repository, which installs kinesalite and dynalite from the
# committed lock file) and Go (gofakes3 comes from the Go module proxy).
# Nothing listens beyond loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${FINEO_STANDINS_DIR:-${TMPDIR:-/tmp}/fineo-standins}"

freeport() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

waitport() { # port name
  for _ in $(seq 1 200); do
    if node -e "require('net').connect($1,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "standins: $2 did not start on port $1 (see $dir/$2.log)" >&2
  return 1
}

start() {
  if [[ ! -d node_modules/kinesalite || ! -d node_modules/dynalite ]]; then
    echo "standins: run 'npm ci' first (installs kinesalite and dynalite)" >&2
    exit 1
  fi
  stop >/dev/null 2>&1 || true
  mkdir -p "$dir"
  local kport dport sport
  kport=$(freeport)
  dport=$(freeport)
  sport=$(freeport)
  nohup node --require ./internal/testenv/standin_guard.js -e "require('kinesalite')({createStreamMs:0,deleteStreamMs:0,updateStreamMs:0,shardLimit:100}).listen($kport,'127.0.0.1')" \
    >"$dir/kinesalite.log" 2>&1 &
  echo $! >"$dir/kinesalite.pid"
  nohup node --require ./internal/testenv/standin_guard.js -e "require('dynalite')({createTableMs:0,deleteTableMs:0,updateTableMs:0}).listen($dport,'127.0.0.1')" \
    >"$dir/dynalite.log" 2>&1 &
  echo $! >"$dir/dynalite.pid"
  go build -o "$dir/gofakes3" github.com/johannesboyne/gofakes3/cmd/gofakes3
  nohup "$dir/gofakes3" -host "127.0.0.1:$sport" -backend memory -autobucket -quiet \
    >"$dir/gofakes3.log" 2>&1 &
  echo $! >"$dir/gofakes3.pid"
  waitport "$kport" kinesalite
  waitport "$dport" dynalite
  waitport "$sport" gofakes3
  cat >"$dir/env" <<EOF
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$kport
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$dport
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$sport
export AWS_ACCESS_KEY_ID=standins-dummy-key
export AWS_SECRET_ACCESS_KEY=standins-dummy-secret
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
  cat "$dir/env"
}

stop() {
  local name
  for name in kinesalite dynalite gofakes3; do
    if [[ -f "$dir/$name.pid" ]]; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
  rm -f "$dir/env"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
