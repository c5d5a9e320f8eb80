# Sourced by scripts/run.sh and scripts/test.sh: installs what Heimdex needs on first use.
# uv (from PyPI), the locked Python dependencies, and ffmpeg from Debian when it is missing.
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  apt_install ffmpeg
fi

if ! command -v uv >/dev/null; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  echo "heimdex: installing uv from PyPI" >&2
  # Debian's own Python refuses user installs unless told (PEP 668); uv lives in ~/.local only.
  python3 -m pip install --quiet --user uv 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages uv
fi

# Bytecode is compiled once here (about 20 s on the first sync): every process Heimdex starts,
# each run worker included, would otherwise compile Dagster, SQLAlchemy and the media libraries
# from source again where PYTHONDONTWRITEBYTECODE is set: 3.2 s of CPU a run instead of 1.8 s.
uv sync --frozen --quiet --compile-bytecode
