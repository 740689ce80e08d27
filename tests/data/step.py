"""A stand-in training step for the local executor's tests: write, copy, emit events, fail."""
import json
import sys
import time
from pathlib import Path

command, *args = sys.argv[1:]
if command == "write":
    path, text = Path(args[0]), args[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
elif command == "append":
    source, target, text = Path(args[0]), Path(args[1]), args[2]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source.read_text() + text)
    print(f"appended to {target}")
elif command == "events":
    for epoch in (1, 2):
        print(json.dumps({"message": "progress", "event_type": "EventType.PROGRESS", "subtask": "train",
                          "current": epoch * 10, "total": 20, "timestamp": time.time()}))
        print(json.dumps({"message": "metrics", "event_type": "EventType.METRICS", "type": "val", "epoch": epoch,
                          "metrics": {"mAP": 0.1 * epoch}, "timestamp": time.time()}))
    Path(args[0]).mkdir(parents=True, exist_ok=True)
    (Path(args[0]) / "model.txt").write_text("weights")
elif command == "fail":
    print("something went wrong: bad input")
    sys.exit(3)
elif command == "sleep":
    time.sleep(float(args[0]))
