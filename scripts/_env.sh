# Shared by the quick-start scripts: a .venv with the project installed, made once.
# scripts/dashboard installs what the dashboard needs; scripts/test sets install_extra=test first, for
# the test tools too (pytest, playwright, schemathesis, ruff, mypy, ...), which the dashboard never uses.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extra=${install_extra:-}
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Re-install only when pyproject.toml changed since the last install of this set: one stamp per set,
# so the dashboard after the tests installs nothing, and the tests after the dashboard add their extra.
base_stamp=.venv/.tricklab-installed
stamp=$base_stamp${extra:+-$extra}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # pip byte-compiles what it installs on one core; compileall does the same on every core, in about half
  # the time. The .pyc files matter: with PYTHONDONTWRITEBYTECODE set, each process would compile PyTorch
  # again. Some packages ship files for other Python versions, which neither can compile.
  .venv/bin/python -m pip install --quiet --no-compile -e ".${extra:+[$extra]}"
  .venv/bin/python -m compileall -q -j 0 "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null 2>&1 || true
  touch "$stamp"
  # An extra's install holds the dashboard's too.
  [ "$stamp" = "$base_stamp" ] || touch "$base_stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
