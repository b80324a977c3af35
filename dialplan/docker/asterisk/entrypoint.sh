#!/bin/sh
# The ARI password comes from the environment, never from the image.
set -eu
: "${ARI_PASSWORD:?set ARI_PASSWORD}"
sed -i "s/^password = .*/password = ${ARI_PASSWORD}/" /etc/asterisk/ari.conf
exec "$@"
