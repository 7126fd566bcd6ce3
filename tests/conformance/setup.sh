#!/usr/bin/env bash
# Installs wstest (the Autobahn TestSuite) on first use, all of it inside
# tests/conformance/.wstest (git-ignored): CPython 2.7.18 from pyenv (wstest is
# Python 2 code), a virtualenv made by virtualenv<20 (the last line that makes 2.7
# environments) and the pins in requirements.txt. Nothing is cached elsewhere.
# A finished install leaves a copy of requirements.txt as its stamp; a changed
# requirements.txt, or an install cut short, starts again from scratch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$here/.wstest
if cmp -s "$dir/requirements.txt" "$here/requirements.txt" && [ -x "$dir/env/bin/python" ]; then
    exit 0
fi

# pyenv is found on PATH, or where it installs itself by default.
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
python2=$pyenv_root/versions/2.7.18/bin/python
if [ ! -x "$python2" ]; then
    pyenv=$(command -v pyenv || echo "$pyenv_root/bin/pyenv")
    if [ ! -x "$pyenv" ]; then
        echo "setup: pyenv is needed for CPython 2.7.18 (wstest is Python 2 code)" >&2
        exit 1
    fi
    echo "setup: installing CPython 2.7.18 with pyenv" >&2
    "$pyenv" install --skip-existing 2.7.18
    python2=$("$pyenv" prefix 2.7.18)/bin/python
fi

echo "setup: installing wstest into $dir (a few minutes, once)" >&2
rm -rf "$dir"
mkdir -p "$dir"
pip_quiet=(--quiet --no-cache-dir --disable-pip-version-check --no-python-version-warning)
"$python2" -m pip install "${pip_quiet[@]::3}" --target "$dir/virtualenv" 'virtualenv<20'
PYTHONPATH=$dir/virtualenv "$python2" -m virtualenv --quiet --no-download "$dir/env"
"$dir/env/bin/pip" install "${pip_quiet[@]}" -r "$here/requirements.txt"
"$dir/env/bin/python" -c 'import autobahntestsuite, autobahn, twisted'
cp "$here/requirements.txt" "$dir/requirements.txt"
echo "setup: wstest $("$dir/env/bin/pip" show autobahntestsuite 2>/dev/null | sed -n 's/^Version: //p') ready" >&2
