# (Re)start the background training run from its last checkpoint (or the shipped weights) over every
# chunk decoded so far; it outlives the call (setsid) while the machine is held. Env: BATCH, LR,
# VAL_EVERY, WAIT (seconds to watch it), EXTRA (more mss-research train flags).
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
pkill -f "mss_research train" && sleep 3
mkdir -p /tmp/run
setsid nohup python3 -m mss_research train --data /tmp/DATA --run-dir /tmp/run --init weights/mss-fewshot.safetensors \
  --steps 1000000 --minutes 40 --batch "${BATCH:-32}" --lr "${LR:-3e-4}" --workers 14 --val-every "${VAL_EVERY:-500}" \
  --checkpoint-every 100 $EXTRA >> /tmp/run/train.out 2>&1 < /dev/null &
sleep "${WAIT:-45}"
tail -3 /tmp/run/train.out; tail -2 /tmp/run/log.csv
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
