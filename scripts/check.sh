#!/usr/bin/env bash
# The whole test suite, as one command (`make test` runs it; so does CI, through .ci/run):
#
#   bash scripts/check.sh [PYTEST_ARGS...]
#
# Steps, in order, failing fast with the name of the failed step:
#   bootstrap  scripts/bootstrap.sh: the venv and the pinned install (skipped when up to date)
#   browser    scripts/system_chromium.sh: the system Chromium the dashboard's browser tests drive
#   protos     scripts/gen_protos.py --check: the committed generated code matches protos/
#   buf-lint   buf lint
#   buf-break  buf breaking against the commit this work starts from (see breaking_base below)
#   ruff-check, ruff-format   ruff check . and ruff format --check .
#   mypy       mypy (the `files` list of pyproject.toml)
#   then, inside scripts/with_postgres.sh (a throwaway PostgreSQL; TUNIX_RT_TEST_POSTGRES_URL set):
#   migrations scripts/check_migrations.py (SQLite and PostgreSQL), when it exists
#   pytest     the tests, with branch coverage and a minimum of COV_MIN percent
#
# Environment:
#   COV_MIN=80                     minimum total coverage (percent) for pytest
#   PYTEST_MARKERS="not slow"      a pytest -m expression (default: empty = run everything)
#   ALLOW_NO_TESTS=1               pytest collecting no test is then a warning, not a failure
#   KEEP_GOING=1                   run every step even after a failure, then list the failed ones
#   BUF_BREAKING_AGAINST=REV|none  the git revision for buf breaking, or `none` to skip it
#   VENV=.venv                     the virtualenv (as for scripts/bootstrap.sh)
#   TUNIX_RT_REQUIRE_POSTGRES=1    fail instead of skipping PostgreSQL when it cannot run (CI sets it)
set -euo pipefail

COV_MIN="${COV_MIN:-80}"
PYTEST_MARKERS="${PYTEST_MARKERS:-}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"  # relative to the caller's directory
export VENV
cd "$ROOT"
VPY="$VENV/bin/python"

# Second half: scripts/check.sh re-runs itself under with_postgres.sh with this set.
INNER="${_TUNIX_RT_CHECK_INNER:-0}"

if [[ -t 1 ]]; then BOLD=$'\e[1m' RED=$'\e[31m' GREEN=$'\e[32m' RESET=$'\e[0m'; else BOLD='' RED='' GREEN='' RESET=''; fi

FAILED=()

# step NAME CMD...: prints a header, runs CMD, and exits naming the step when it fails
# (with KEEP_GOING=1 it records the failure and goes on).
step() {
    local name="$1"
    shift
    echo "${BOLD}==> [$name] $*${RESET}"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "${RED}${BOLD}check.sh: FAILED at step '$name' (exit $rc): $*${RESET}" >&2
        [[ "${KEEP_GOING:-0}" == 1 ]] || exit "$rc"
        FAILED+=("$name")
        return 0
    fi
    echo "${GREEN}--- [$name] ok ($((SECONDS - start)) s)${RESET}"
}

# finish: the exit status of this half, with the list of failed steps under KEEP_GOING=1.
finish() {
    if ((${#FAILED[@]})); then
        echo "${RED}${BOLD}check.sh: failed steps: ${FAILED[*]}${RESET}" >&2
        exit 1
    fi
}

skip() {
    echo "${BOLD}==> [$1] skipped: $2${RESET}"
}

# breaking_base prints `base REV`: the git revision that `buf breaking` compares the working tree
# against, or `skip REASON`. The choice:
#  - BUF_BREAKING_AGAINST, when set (`none` skips the check);
#  - on a branch other than main: the merge-base with main, i.e. the contract this branch started
#    from (not main's tip, which may have moved on with changes this branch never saw);
#  - on main itself (CI checks out a clone of main, so HEAD is main): HEAD~1, the contract before
#    the newest commit. The working tree is compared, so uncommitted proto edits are included.
#    A shallow clone without HEAD~1 skips. Note that this only sees the newest commit: a breaking
#    change in an earlier commit of the same push is not caught on CI.
# It skips when the base has no protos/ or no buf.yaml (nothing to compare with yet).
# To land an intended breaking change, list the file or rule in buf.yaml's `breaking` section.
breaking_base() {
    local want="${BUF_BREAKING_AGAINST:-}" head main base
    if [[ "$want" == none ]]; then
        echo "skip BUF_BREAKING_AGAINST=none"
    elif ! command -v git >/dev/null || ! git rev-parse --git-dir >/dev/null 2>&1; then
        echo "skip not a git checkout"
    elif ! head="$(git rev-parse -q --verify 'HEAD^{commit}')"; then
        echo "skip no commit yet"
    elif [[ -n "$want" ]] && ! base="$(git rev-parse -q --verify "$want^{commit}")"; then
        echo "skip BUF_BREAKING_AGAINST=$want is not a git revision"
    elif [[ -z "$want" ]] && main="$(git rev-parse -q --verify 'refs/heads/main^{commit}' ||
        git rev-parse -q --verify 'refs/remotes/origin/main^{commit}')" && [[ "$main" != "$head" ]] &&
        ! base="$(git merge-base HEAD "$main")"; then
        echo "skip HEAD has no common ancestor with main"
    elif [[ -z "${base:-}" ]] && ! base="$(git rev-parse -q --verify 'HEAD~1^{commit}')"; then
        echo "skip HEAD is main and has no parent commit here (first commit, or a shallow clone)"
    elif ! git cat-file -e "$base:protos" 2>/dev/null || ! git cat-file -e "$base:buf.yaml" 2>/dev/null; then
        echo "skip base $(git rev-parse --short "$base") has no protos/ or buf.yaml yet"
    else
        echo "base $base"
    fi
}

# buf_breaking BASE: extracts protos/ and buf.yaml of BASE into a temporary directory and compares.
# Not `--against .git#ref=BASE`: buf.yaml's second module, build/proto-deps (the google/rpc
# protos copied by gen_protos.py), is not committed, so the git input cannot build; the current
# copy of it is added to the extracted tree instead.
buf_breaking() {
    local base="$1" tmp rc=0
    tmp="$(mktemp -d)"
    git archive --format=tar "$base" -- protos buf.yaml | tar -x -C "$tmp"
    mkdir -p "$tmp/build"
    cp -R build/proto-deps "$tmp/build/"
    "$VENV/bin/buf" breaking --against "$tmp" || rc=$?
    rm -rf "$tmp"
    return "$rc"
}

# tests_run JUNIT_XML: prints how many tests pytest ran (0 when the report is missing).
tests_run() {
    "$VPY" - "$1" <<'EOF' 2>/dev/null || echo 0
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
print(sum(int(s.get("tests", 0)) for s in suites))
EOF
}

run_pytest() {
    local junit_dir rc=0 ran
    junit_dir="$(mktemp -d)"
    local args=(--cov --cov-branch --cov-report=term "--cov-fail-under=$COV_MIN" --durations=15
        "--junitxml=$junit_dir/junit.xml")
    [[ -n "$PYTEST_MARKERS" ]] && args+=(-m "$PYTEST_MARKERS")
    "$VENV/bin/pytest" "${args[@]}" "$@" || rc=$?
    ran="$(tests_run "$junit_dir/junit.xml")"
    rm -rf "$junit_dir"
    # "No tests ran" is never a silent pass, nor a confusing coverage failure (pytest-cov turns
    # pytest's exit 5 into a fail-under failure): say so plainly.
    if [[ $rc -eq 5 || "$ran" == 0 ]]; then
        if [[ "${ALLOW_NO_TESTS:-0}" == 1 ]]; then
            echo "check.sh: WARNING: pytest ran no tests (ALLOW_NO_TESTS=1)" >&2
            return 0
        fi
        echo "check.sh: pytest ran no tests (pytest exit $rc); set ALLOW_NO_TESTS=1 to accept that" >&2
        return 5
    fi
    return "$rc"
}

if [[ "$INNER" != 1 ]]; then
    total_start=$SECONDS
    step bootstrap bash scripts/bootstrap.sh
    step browser bash scripts/system_chromium.sh
    export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
    # gen_protos.py also refreshes build/proto-deps, which buf.yaml needs: keep it first.
    step protos "$VPY" scripts/gen_protos.py --check
    step buf-lint "$VENV/bin/buf" lint
    read -r kind what < <(breaking_base)
    if [[ "$kind" == base ]]; then
        step buf-break buf_breaking "$what"
    else
        skip buf-break "$what"
    fi
    step ruff-check "$VENV/bin/ruff" check .
    step ruff-format "$VENV/bin/ruff" format --check .
    step mypy "$VENV/bin/mypy"
    echo "${BOLD}==> [postgres] starting a throwaway PostgreSQL for the database steps${RESET}"
    rc=0
    _TUNIX_RT_CHECK_INNER=1 bash scripts/with_postgres.sh bash "$ROOT/scripts/check.sh" "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ "${KEEP_GOING:-0}" == 1 ]] || exit "$rc"
        FAILED+=("(database steps, see above)")
    fi
    finish
    echo "${GREEN}${BOLD}check.sh: all steps passed ($((SECONDS - total_start)) s)${RESET}"
    exit 0
fi

# Inside with_postgres.sh.
if [[ -f scripts/check_migrations.py ]]; then
    step migrations "$VPY" scripts/check_migrations.py
else
    skip migrations "scripts/check_migrations.py does not exist yet"
fi
step pytest run_pytest "$@"
finish
