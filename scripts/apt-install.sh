#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages named that are not installed yet (with sudo when not root); a
# package named PKG:ARCH adds ARCH as a foreign architecture first. Nothing happens when all are there.
# usage: bash scripts/apt-install.sh PKG...
set -euo pipefail
need=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -gt 0 ] || exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
for pkg in "${need[@]}"; do
  case "$pkg" in
    *:*) arch="${pkg##*:}"
         dpkg --print-foreign-architectures | grep -qx "$arch" || $SUDO dpkg --add-architecture "$arch" ;;
  esac
done
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" > /dev/null
