#!/usr/bin/env bash
# Creates (if missing) the project virtualenv and installs tunix-rt editable with its dev extra,
# every package pinned by requirements/lock.txt. Idempotent: it skips the install when
# pyproject.toml, the lock and the venv's Python are unchanged since the last successful one
# (a stamp file inside the venv holds their hash).
#
#   bash scripts/bootstrap.sh          (or: make bootstrap)
#
# Environment: VENV (default: .venv in the repository root), PYTHON (default: python3, used only
# to create the venv), BOOTSTRAP_FORCE=1 to reinstall even when the stamp matches,
# BOOTSTRAP_PRUNE=0 to keep packages that the lock does not list (by default an install removes
# them, so that the venv holds exactly what a fresh machine gets).
# Quiet on success; on failure it prints pip's full log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"  # relative to the caller's directory
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
LOCK="$ROOT/requirements/lock.txt"
STAMP="$VENV/.tunix-rt-bootstrap.stamp"
VPY="$VENV/bin/python"

die() {
    echo "bootstrap: $*" >&2
    exit 1
}

[[ -f "$LOCK" ]] || die "missing $LOCK (generate it with: make lock)"

if [[ ! -x "$VPY" ]] || ! "$VPY" -c 'import sys' >/dev/null 2>&1; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: Python 3.11+ is required"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is $("$PYTHON" --version 2>&1); Python 3.11+ is required"
    echo "bootstrap: creating virtualenv $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "python -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi

want="$(cat pyproject.toml "$LOCK" <("$VPY" -VV) | sha256sum | cut -d' ' -f1)"
if [[ "${BOOTSTRAP_FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "bootstrap: $VENV is up to date"
    exit 0
fi

echo "bootstrap: installing tunix-rt[dev] into $VENV (pinned by requirements/lock.txt)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
pip_run() {
    if ! "$VPY" -m pip --disable-pip-version-check --no-input "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        die "pip $* failed (full log above)"
    fi
}
rm -f "$STAMP"
start=$SECONDS
# The pinned pip first: the venv's bundled pip may be too old for --build-constraint.
pip_run install -c "$LOCK" pip
# --build-constraint pins setuptools/wheel in the isolated build of the editable install too.
pip_run install -c "$LOCK" --build-constraint "$LOCK" -e '.[dev]'
# Packages left from an earlier lock (a dependency that was dropped, or one installed by hand)
# would let code pass here that fails on a fresh machine: remove what the lock does not list.
extra="$("$VPY" - "$LOCK" <<'EOF'
import re
import sys
from importlib import metadata

def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

locked = {"tunix-rt"}
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line:
        locked.add(norm(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]))
installed = {norm(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}
print(" ".join(sorted(installed - locked)))
EOF
)"
if [[ -n "$extra" && "${BOOTSTRAP_PRUNE:-1}" == 0 ]]; then
    echo "bootstrap: WARNING: packages not in the lock (kept, BOOTSTRAP_PRUNE=0): $extra"
elif [[ -n "$extra" ]]; then
    echo "bootstrap: removing packages not in the lock: $extra"
    # shellcheck disable=SC2086  # a list of names
    pip_run uninstall -y $extra
fi
pip_run check
echo "$want" >"$STAMP"
echo "bootstrap: done in $((SECONDS - start)) s"
