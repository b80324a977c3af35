#!/usr/bin/env bash
# Extra bona fide voices for `callguard corpus build` that are not installed as packages: unpack the .debs
# into data/packages/<package>/ (asterisk-prompt-de and -fr-proformatique exist only in bullseye; -de would
# pull in asterisk, -fr-proformatique conflicts with -fr-armelle; klettres-data would pull in KDE).
# Needs the bullseye apt source that ./setup adds. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${CALLGUARD_PACKAGES_DIR:-data/packages}
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt-get download runs as _apt
for p in asterisk-prompt-de asterisk-prompt-fr-proformatique klettres-data; do
  [ -d "$DEST/$p" ] && continue
  (cd "$tmp" && apt-get download "$p" >/dev/null)
  dpkg-deb -x "$tmp"/"${p}"_*.deb "$DEST/$p"
  echo "unpacked $p into $DEST/$p"
done
