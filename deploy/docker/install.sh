#!/bin/sh
# Install what one Trunkline image runs into $UV_PROJECT_ENVIRONMENT, exactly as the Dockerfile's
# build stage does (tests/integration/test_images.py runs it the same way in a fresh folder):
#   install.sh all "whisper piper llamacpp"    the CPU image: every service, embedded models
#   install.sh trunkline-gateway ""            a slim image: one member and its dependencies
#   install.sh trunkline-stt "riva"            ... with the member's extras
# The contracts are generated first (tools/gen_proto.py, with the dev group's grpcio-tools, which
# the exact `uv sync` after it removes again); members are installed non-editable, so the runtime
# stage needs the environment only, not the sources.
set -eu
package="$1"
extras="${2:-}"
: "${UV_PROJECT_ENVIRONMENT:?set UV_PROJECT_ENVIRONMENT to the environment to install into}"

uv run --frozen --only-group dev python tools/gen_proto.py

set -- --frozen --no-dev --no-editable --compile-bytecode
if [ "$package" = all ]; then
  set -- "$@" --all-packages
else
  set -- "$@" --package "$package"
fi
for extra in $extras; do
  set -- "$@" --extra "$extra"
done
uv sync "$@"
