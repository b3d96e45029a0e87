#!/bin/bash
# A stand-in for aws, curl, systemctl, journalctl and sleep in the boot
# script's test: each call is appended to $STANDIN/calls; what fails is
# set by the environment (see boot_test.go).
set -u
cmd=$(basename "$0")
echo "$cmd $*" >>"$STANDIN/calls"
# count NAME: how many times NAME was counted, this call included.
count() { local n; n=$(($(cat "$STANDIN/count.$1" 2>/dev/null || echo 0) + 1)); echo "$n" >"$STANDIN/count.$1"; echo "$n"; }
case "$cmd" in
sleep)
  echo $(($(cat "$STANDIN/slept" 2>/dev/null || echo 0) + $1)) >"$STANDIN/slept" ;;
systemctl | journalctl) ;;
curl)
  case "$*" in
  *api/token*) echo token ;;
  *instance-id*) echo i-0123456789abcdef0 ;;
  *healthz*) (($(count health) > ${HEALTH_FAILS:-0})) || exit 7 ;;
  *) exit 22 ;;
  esac ;;
aws)
  case "$1 $2" in
  "s3 cp")
    (($(count s3cp) > ${S3_FAILS:-0})) || { echo "download failed: connection reset" >&2; exit 1; }
    printf 'relay binary' >"${*: -1}" ;;
  "ssm get-parameter")
    name=$(sed -n 's/.*--name \([^ ]*\).*/\1/p' <<<"$*")
    f="$STANDIN/parameters/${name//\//_}"
    [[ -f $f ]] || { echo "An error occurred (ParameterNotFound) when calling the GetParameter operation: " >&2; exit 254; }
    cat "$f" ;;
  "ssm put-parameter")
    name=$(sed -n 's/.*--name \([^ ]*\).*/\1/p' <<<"$*")
    value=$(sed -n 's/.*--value file:\/\/\([^ ]*\).*/\1/p' <<<"$*")
    f="$STANDIN/parameters/${name//\//_}"
    if [[ -n ${PUT_RACE:-} ]]; then cp "$PUT_RACE" "$f"; echo "An error occurred (ParameterAlreadyExists)" >&2; exit 254; fi
    [[ ! -f $f ]] || { echo "An error occurred (ParameterAlreadyExists)" >&2; exit 254; }
    cp "$value" "$f" ;;
  "ec2 associate-address")
    (($(count associate) > ${ASSOCIATE_FAILS:-0})) || exit 255 ;;
  "cloudformation signal-resource" | "autoscaling set-instance-health") ;;
  "autoscaling describe-auto-scaling-instances") echo RelayGroup-123 ;;
  "autoscaling complete-lifecycle-action") [[ -n ${HOOK_WAITS:-} ]] || { echo "No active Lifecycle Action found" >&2; exit 254; } ;;
  *) echo "stand-in aws: unexpected $*" >&2; exit 2 ;;
  esac ;;
esac
