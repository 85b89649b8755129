#!/usr/bin/env bash
# Installs what mailroom's tests need, idempotently: Debian packages (as root, only what is missing, one
# `apt-get update` first), the locked npm dependencies, Node 24 from the npm registry (the second test run) and
# cdktn from infra/cdktn's own lockfile (the cdktn synth test). Tools that ship with this machine image
# (moto_server, terraform + the hashicorp/aws provider mirror) are checked and explained, not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have redis-server || need+=(redis-server)
have ruby || need+=(ruby)
ruby -e 'require "aws-sdk-s3"' >/dev/null 2>&1 || need+=(ruby-aws-sdk-s3)
ruby -e 'require "aws-sdk-kms"' >/dev/null 2>&1 || need+=(ruby-aws-sdk-kms)
have swaks || need+=(swaks)
# postfix: a private instance relays to the gateway in test/gateway/edge-postfix.test.ts (smtp-source/smtp-sink too).
[ -x /usr/sbin/postfix ] || need+=(postfix)
# chromium: headless, opens mailroom load's HTML report as a browser would (test/load/report.test.ts).
have chromium || need+=(chromium)
# The verdict tests (test/verdicts) run a real DNS server, SpamAssassin's spamd, rspamd and ClamAV's clamd on loopback, and
# sign mail with Python's dkim as a DKIM signer independent of nodemailer's.
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
[ -x /usr/sbin/spamd ] || need+=(spamd spamassassin)
[ -x /usr/sbin/clamd ] || need+=(clamav-daemon)
[ -x /usr/bin/rspamd ] || need+=(rspamd)
[ -x /usr/bin/dkimsign ] || need+=(python3-dkim)
# The container test (test/container) builds and runs the image as root: buildah, podman with Debian's runc, the
# stand-in base images from debootstrap, docker/compose.yml through podman-compose (dnsname: service names).
# Without root it skips, so these are installed for root only.
if [ "$(id -u)" = 0 ]; then
  have buildah || need+=(buildah)
  have podman || need+=(podman)
  have runc || need+=(runc)
  have podman-compose || need+=(podman-compose)
  [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  [ -x /usr/lib/cni/dnsname ] || need+=(golang-github-containernetworking-plugin-dnsname)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix's debconf would otherwise set up (and may start) a system MTA on port 25; the tests need only the binaries.
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}; install them with: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

have moto_server || { echo "setup: moto_server is missing; install it with: pip install 'moto[server]==5.2.1'" >&2; exit 1; }
have terraform || echo "setup: terraform is not on PATH; the terraform validate/plan/apply tests will skip (install terraform 1.11+)" >&2

npm ci --no-audit --no-fund --loglevel=error

# Node 24 for npm test's second run, cached in ~/.cache/mailroom (scripts/node-lts.mjs).
node24=$(node scripts/node-lts.mjs 24)

# cdktn and its provider bindings (~690 MB) live outside the main lockfile; installed again only when theirs changed.
stamp=infra/cdktn/node_modules/.mailroom-lock
lock=$(sha256sum infra/cdktn/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
  echo "setup: installing cdktn into infra/cdktn (its own lockfile)"
  PATH="$(dirname "$node24"):$PATH" npm ci --prefix infra/cdktn --no-audit --no-fund --loglevel=error
  echo "$lock" >"$stamp"
fi
