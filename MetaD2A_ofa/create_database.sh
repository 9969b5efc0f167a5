#!/usr/bin/env bash
# Build OFA database shards <first index>..<last index> one after the other (the original script).
#
#   IMGNET_PATH=/path/to/ILSVRC2012 bash create_database.sh <gpus> <first index> <last index> <model_name>
#   e.g. bash create_database.sh 0,1,2,3 0 49 predictor   (then: python build_database.py --model_name predictor --collect)
#
# <gpus> is passed to --gpu (a comma list, or "all"); within a shard the tasks run as Ray jobs, one
# GPU each. IMGNET_PATH (train/<wnid>/ and val/<wnid>/) comes from the environment; the original
# hard-coded it. Extra build_database.py flags can be given in BUILD_DATABASE_ARGS, e.g.
# BUILD_DATABASE_ARGS="--num-tasks 200".
set -euo pipefail

if [ "$#" -ne 4 ]; then
    echo "usage: IMGNET_PATH=DIR bash create_database.sh <gpus> <first index> <last index> <predictor|generator>" >&2
    exit 2
fi
if [ -z "${IMGNET_PATH:-}" ]; then
    echo "error: set IMGNET_PATH to the ImageNet folder (with train/ and val/), e.g. IMGNET_PATH=/data/ILSVRC2012 bash create_database.sh $*" >&2
    exit 2
fi
HERE="$(dirname "$0")"
PYTHON="${PYTHON:-python}"
for ((ind = $2; ind <= $3; ind++)); do
    # shellcheck disable=SC2086  # BUILD_DATABASE_ARGS is a list of flags
    "$PYTHON" "$HERE/build_database.py" --gpu "$1" --model_name "$4" --index "$ind" --imgnet "$IMGNET_PATH" \
        --hs 512 --nz 56 ${BUILD_DATABASE_ARGS:-}
done
