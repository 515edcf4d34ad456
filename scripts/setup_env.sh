# Sourced by demo.sh and test.sh: make .venv (if missing) and install the project into it.
# FAISS comes as faiss-gpu where an NVIDIA GPU answers, faiss-cpu elsewhere (never both: same module name).
# The install is skipped when pyproject.toml has not changed since the last one.
set -euo pipefail

python_bin="${PYTHON:-python3}"
if ! command -v "$python_bin" >/dev/null 2>&1; then
    echo "error: $python_bin not found; nero-monitor needs Python 3.10 or newer" >&2
    exit 1
fi
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: $("$python_bin" --version 2>&1) is too old; nero-monitor needs Python 3.10 or newer" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$python_bin" --version 2>&1)"
    "$python_bin" -m venv .venv
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then faiss_extra=gpu; else faiss_extra=cpu; fi
extras="$faiss_extra${NERO_EXTRAS:+,$NERO_EXTRAS}"
stamp=".venv/.nero-installed"
wanted="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "installing nero-monitor[$extras] into .venv (the first time downloads PyTorch: a few minutes)"
    log=.venv/install.log
    if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[$extras]"; } \
            > "$log" 2>&1; then
        tail -n 25 "$log" >&2
        echo "error: installing nero-monitor failed; the whole pip output is in $log" >&2
        exit 1
    fi
    echo "$wanted" > "$stamp"
fi
