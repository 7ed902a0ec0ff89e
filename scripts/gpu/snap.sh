# Wait WAIT seconds, then export the run's last checkpoint as fp16 weights into $OUT, with its log.
export PYTHONPATH=/tmp/site:$PWD
sleep "${WAIT:-60}"
python3 - <<PY
from safetensors import safe_open
from mss_research.train import export
step = safe_open("/tmp/run/last.safetensors", "pt").metadata()["step"]
export("/tmp/run/last.safetensors", "$OUT/gpu-" + step + ".safetensors")
print("exported step", step)
PY
cp /tmp/run/log.csv /tmp/run/train.out "$OUT/"
tail -3 /tmp/run/train.out
