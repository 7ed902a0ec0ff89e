# First call on a lent GPU machine: install the wheels its torch image lacks (carried in .whl),
# decode the first chunk. See scripts/gpu/README.md.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -m mss_research.gpu.decode
