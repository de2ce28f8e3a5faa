"""``python -m tests.copying.subscriptions.concurrent_tick START``: wait until the epoch
second START, then run the renewal tick task's body once (publishing to the test broker) and print
what it took as JSON. Two of these started together race on the same subscriptions."""

from __future__ import annotations

import json
import sys
import time

from tasks.renewals import tick

if __name__ == "__main__":
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    print(json.dumps(tick()))
