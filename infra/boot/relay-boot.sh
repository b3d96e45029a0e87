# The relay's boot script (infra/boot/relay-boot.sh), run once by
# cloud-init as root. The stack puts its settings above this line (the
# SC_ variables, see boot.go). It installs the relay, its certificate
# when ingest is TLS, and its systemd unit; waits until the relay
# answers; takes the relay's Elastic IP over; and tells CloudFormation
# (SUCCESS, or FAILURE at the first step that fails for good, which rolls
# the deploy back). Checked by shellcheck, and run with stand-ins for
# aws, curl, systemctl and sleep, in make test.
set -Eeuo pipefail

# SC_ROOT is empty on an instance; the boot test runs the script in a
# directory of its own.
root=${SC_ROOT:-}
export AWS_DEFAULT_REGION=$SC_REGION
IID=unknown

log() { echo "smoothcast boot: $*" >&2; }

# retry N DELAY CMD...: runs CMD until it succeeds, at most N times,
# DELAY seconds apart.
retry() {
  local n=$1 delay=$2 i
  shift 2
  for ((i = 1; i <= n; i++)); do
    "$@" && return 0
    ((i < n)) && sleep "$delay"
  done
  log "gave up after $n attempts: $*"
  return 1
}

signal() {
  trap - ERR
  log "signal $1"
  retry 5 3 aws cloudformation signal-resource --stack-name "$SC_STACK" \
    --logical-resource-id "$SC_RESOURCE" --unique-id "$IID" --status "$1" || true
}
# A boot that fails while no deploy waits for the signal (a replacement
# the group launched on its own) must not leave an instance in service
# that serves nothing: the group is told it is unhealthy, and replaces it.
fail() {
  log "failed at line $1"
  signal FAILURE
  if [[ $IID != unknown ]]; then
    lifecycle ABANDON || aws autoscaling set-instance-health --instance-id "$IID" --health-status Unhealthy ||
      log "could not mark the instance unhealthy"
  fi
  exit 1
}

# lifecycle RESULT: ends the launch hook SC_HOOK of the instance's group
# (a replacement waits in it until its relay answers: in service means
# ready); fails when none waits, at the stack's creation for instance.
lifecycle() {
  local group
  group=$(aws autoscaling describe-auto-scaling-instances --instance-ids "$IID" \
    --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text) &&
    aws autoscaling complete-lifecycle-action --lifecycle-hook-name "$SC_HOOK" --auto-scaling-group-name "$group" \
      --instance-id "$IID" --lifecycle-action-result "$1" 2>/dev/null
}
trap 'fail $LINENO' ERR

metadata() {
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') &&
    curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
instance_id() { IID=$(metadata instance-id); }
retry 30 2 instance_id

retry 10 3 aws s3 cp --only-show-errors "$SC_BINARY_URL" "$root/usr/local/bin/smoothcast-ingest.new"
chmod 755 "$root/usr/local/bin/smoothcast-ingest.new"
mv -f "$root/usr/local/bin/smoothcast-ingest.new" "$root/usr/local/bin/smoothcast-ingest"

install -d -m 755 "$root/etc/smoothcast"
printf '%s\n' "$SC_ENV" >"$root/etc/smoothcast/relay.env"

# get_parameter NAME: the decrypted value of an SSM parameter on stdout;
# exit status 3 when it does not exist.
get_parameter() {
  local err status=0
  err=$(mktemp)
  aws ssm get-parameter --with-decryption --name "$1" --query Parameter.Value --output text 2>"$err" || status=$?
  if ((status != 0)) && grep -q ParameterNotFound "$err"; then status=3; fi
  ((status == 0)) || cat "$err" >&2
  rm -f "$err"
  return "$status"
}

# A self-signed certificate for the relays' addresses, made once by the
# first relay to boot and kept in the parameter for every relay after it
# (put without --overwrite: of two relays booting at once, one wins and
# the other reads its certificate).
generate_certificate() {
  local dir san="" name
  dir=$(mktemp -d)
  for name in $SC_TLS_NAMES; do
    if [[ $name =~ ^[0-9.]+$|: ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
  done
  log "no certificate in $SC_TLS_PARAMETER: making a self-signed one for ${san%,}"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=smoothcast ingest $SC_STACK" -addext "subjectAltName=${san%,}" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
  cat "$dir/cert.pem" "$dir/key.pem" >"$dir/tls.pem"
  aws ssm put-parameter --type SecureString --name "$SC_TLS_PARAMETER" \
    --description "smoothcast $SC_STACK: self-signed ingest certificate and key (made by the first relay)" \
    --value "file://$dir/tls.pem" >/dev/null || log "put-parameter refused (another relay made it first?)"
  rm -rf "$dir"
}

certificate() {
  local pem=$root/etc/smoothcast/tls.pem status
  (umask 077 && : >"$pem")
  for _ in $(seq 30); do
    status=0
    get_parameter "$SC_TLS_PARAMETER" >"$pem" || status=$?
    if ((status == 0)) && grep -q 'BEGIN CERTIFICATE' "$pem"; then
      return 0
    elif ((status == 3)) && [[ $SC_TLS_GENERATE == 1 ]]; then
      generate_certificate
      continue
    elif ((status == 0)); then
      log "$SC_TLS_PARAMETER holds no PEM certificate"
      return 1
    fi
    sleep 2
  done
  log "could not read the certificate parameter $SC_TLS_PARAMETER"
  return 1
}

install -d -m 755 "$root/etc/systemd/system"
printf '%s\n' "$SC_UNIT" >"$root/etc/systemd/system/smoothcast-ingest.service"
if [[ -n $SC_TLS_PARAMETER ]]; then
  certificate
  install -d -m 755 "$root/etc/systemd/system/smoothcast-ingest.service.d"
  printf '%s\n' "$SC_TLS_DROPIN" >"$root/etc/systemd/system/smoothcast-ingest.service.d/tls.conf"
fi
systemctl daemon-reload
systemctl enable --now smoothcast-ingest

# The relay answers once it has read its secret parameter(s); systemd
# restarts it meanwhile (a parameter made after the deploy began, say).
healthy() { curl -sf -o /dev/null "$SC_HEALTH_URL"; }
if ! retry $((SC_WAIT_SECONDS / 5)) 5 healthy; then
  log "the relay did not answer within $SC_WAIT_SECONDS s; its last words:"
  journalctl -u smoothcast-ingest -n 30 --no-pager >&2 || true
  false
fi

retry 30 2 aws ec2 associate-address --allow-reassociation --instance-id "$IID" --allocation-id "$SC_ALLOCATION_ID" >/dev/null
lifecycle CONTINUE || log "no launch hook waits (the stack's creation): the signal tells"
signal SUCCESS
