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
  .venv/bin/python -m pip install --quiet -e ".${extra:+[$extra]}"
  touch "$stamp"
  # An extra's install holds the dashboard's too.
  [ "$stamp" = "$base_stamp" ] || touch "$base_stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
