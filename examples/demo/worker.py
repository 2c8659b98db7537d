# Demo: a background worker that logs a heartbeat.
import time
n = 0
while True:
    n += 1
    print(f"heartbeat {n}", flush=True)
    time.sleep(5)
