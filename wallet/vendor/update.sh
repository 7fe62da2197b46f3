#!/bin/sh
# Re-vendor the wallet's third-party files from the npm registry (npm pack, no install
# scripts run). Versions are pinned here; bump one, run this, review the diff, commit.
#   sh wallet/vendor/update.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
QRCODE=qrcode-generator@2.0.4
CBORG=cborg@6.1.5
BASE45=@digitalbazaar/base45@1.0.0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
for spec in "$QRCODE" "$CBORG" "$BASE45"; do
    dir=$(echo "$spec" | sed 's/[@\/]/_/g')
    mkdir "$dir"
    tgz=$(npm pack --silent "$spec")
    tar xzf "$tgz" -C "$dir"
done

# qrcode-generator: the ES module build. The package ships no LICENSE file; its licence
# (MIT, Kazuhiko Arase) is stated in the header of the file itself, copied here.
out="$HERE/qrcode-generator"
rm -rf "$out" && mkdir -p "$out"
cp qrcode-generator_2.0.4/package/dist/qrcode.mjs "$out/qrcode.mjs"
{
    sed -n '1,16p' qrcode-generator_2.0.4/package/dist/qrcode.mjs
    cat <<'MIT'

MIT License

Copyright (c) 2009 Kazuhiko Arase

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
MIT
} > "$out/LICENSE"
echo "npm package qrcode-generator 2.0.4 (dist/qrcode.mjs), MIT" > "$out/README"

# cborg: its ES modules as published (cborg.js and the lib/ files it imports).
out="$HERE/cborg"
rm -rf "$out" && mkdir -p "$out/lib"
src=cborg_6.1.5/package
cp "$src/cborg.js" "$src/LICENSE" "$out/"
for f in 0uint 1negint 2bytes 3string 4array 5map 6tag 7float bl byte-utils common \
         decode encode is jump tagged token; do
    cp "$src/lib/$f.js" "$out/lib/$f.js"
done
echo "npm package cborg 6.1.5 (cborg.js and lib/), Apache-2.0" > "$out/README"

# @digitalbazaar/base45: RFC 9285 Base45, one ES module.
out="$HERE/base45"
rm -rf "$out" && mkdir -p "$out"
cp _digitalbazaar_base45_1.0.0/package/lib/index.js "$out/base45.js"
cp _digitalbazaar_base45_1.0.0/package/LICENSE "$out/LICENSE"
echo "npm package @digitalbazaar/base45 1.0.0 (lib/index.js), BSD-3-Clause" > "$out/README"
echo "vendored into $HERE"
