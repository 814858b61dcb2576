#!/bin/sh
# Render one deploy file with the values of an env file.
#
#   deploy/render.sh fineo.env deploy/flink/flink-cluster.yaml | kubectl apply -f -
#   deploy/render.sh fineo.env deploy/iam/stream.json > /tmp/stream.json
#   deploy/render.sh fineo.env deploy/iam/trust-eks-irsa.json K8S_SERVICE_ACCOUNT=flink
#
# Only ${NAME} for names defined in the env file (or given as NAME=value) is
# replaced, so Kubernetes' own $(NAME) references are left alone. Fails when a
# ${NAME} is left over.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 ENVFILE FILE [NAME=value ...]" >&2
	exit 2
fi
envfile=$1
file=$2
shift 2
set -a
. "$envfile"
for kv in "$@"; do export "$kv"; done
set +a
vars=$({
	sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' "$envfile"
	for kv in "$@"; do echo "${kv%%=*}"; done
} | sed 's/.*/${&}/' | tr '\n' ' ')
out=$(envsubst "$vars" <"$file")
if printf '%s\n' "$out" | grep -n '\${[A-Za-z_]' >&2; then
	echo "render.sh: variables left unset in $file (lines above)" >&2
	exit 1
fi
printf '%s\n' "$out"
