#!/usr/bin/env bash
# The main job, on a Debian 12 host as root: install what Hangar needs, build it and the desktop image (cached),
# start the controller (netns mode: all VM networking in the namespace `hangar`, the host side in `hangar-host`;
# the root namespace's network is not touched), boot one desktop VM and print the URL that opens it in a browser.
# Options: --port N (default 7070), --host ADDR (default 127.0.0.1; 0.0.0.0 to reach it from another machine),
# --profile desktop|browser.
set -euo pipefail
cd "$(dirname "$0")/.."

port=7070 host=127.0.0.1 profile=desktop
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    *) echo "usage: $0 [--port N] [--host ADDR] [--profile desktop|browser]" >&2; exit 2 ;;
  esac
done

./scripts/install-deps.sh
npm run build --silent
hangar() { node bin/hangar.js "$@"; }

hangar image build --profile "$profile"
hangar up --host "$host" --port "$port"
name="$profile-1"
if ! hangar vm show "$name" >/dev/null 2>&1; then
  hangar vm create --profile "$profile" --name "$name"
fi
url=$(hangar vm open "$name" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).url))')
cat <<MSG

Hangar is up.
  Desktop VM '$name' in the browser (link valid for a few minutes; 'npx hangar vm open $name' makes a new one):
    $url
  API: http://$host:$port  (bearer token in /var/lib/hangar/token)    CLI: npx hangar vm ls
  Stop the controller: npx hangar down   (VMs keep running; 'npx hangar vm rm $name' removes the VM)
  Remove everything:   npx hangar down --purge   (VMs, controller, Hangar's network namespaces)
MSG
