#!/usr/bin/env bash
# Installs the Debian packages kvattn's build and tests need, and says which.
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
  python3          # tests/data/make_hf_stories.py writes Hugging Face folders
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present: ${packages[*]}"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: not root; run as root or install them yourself: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "install-deps: apt-get update failed; trying the package lists already here" >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: installed ${missing[*]}"
