#!/bin/sh
# make deb: build pinctrl-daemon_<version>_all.deb with Debian's own tools
# (debhelper, dh-python/pybuild) into OUT (default build/deb), then run
# lintian on it (fails on an error).
#
#   packaging/build-deb.sh [OUT]
#
# The package is built in a copy of the files it is made of, under OUT, so
# the checkout is left as it was (no debian/pinctrl-daemon/, .pybuild/,
# build/ in the work tree).  debian/changelog is written here, with the
# version of pyproject.toml: the one place the version is kept.
set -eu
# Debian's Python and tools only: not a pyenv, a venv or /usr/local first
# on PATH (pybuild runs "python3.11" from PATH).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build/deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

VERSION=$(python3 -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$ROOT/pyproject.toml")
TREE=$OUT/pinctrl-daemon-$VERSION

rm -rf "$TREE" "$OUT"/pinctrl-daemon_*
mkdir -p "$TREE"
# What the package is made of; nothing else of the work tree (.venv, tests).
(cd "$ROOT" && cp -a pyproject.toml README.md src docs packaging debian "$TREE/")
find "$TREE" \( -name __pycache__ -o -name '*.egg-info' \) -prune \
    -exec rm -rf {} +

MAINT=$(sed -n 's/^Maintainer: //p' "$TREE/debian/control")
cat > "$TREE/debian/changelog" <<EOF
pinctrl-daemon ($VERSION) unstable; urgency=medium

  * pinctrl-daemon $VERSION, built from its source tree by make deb.

 -- $MAINT  $(date -R)
EOF

(cd "$TREE" && dpkg-buildpackage -b -us -uc -j"$(nproc)") \
    > "$OUT/build.log" 2>&1 || {
    tail -40 "$OUT/build.log"
    echo "build-deb: dpkg-buildpackage failed, full log: $OUT/build.log" >&2
    exit 1
}
DEB=$OUT/pinctrl-daemon_${VERSION}_all.deb
CHANGES=$OUT/pinctrl-daemon_${VERSION}_$(dpkg --print-architecture).changes
# Errors fail the build; warnings are printed.
lintian --fail-on error --tag-display-limit 0 "$CHANGES"
echo "$DEB"
