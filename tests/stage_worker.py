"""A tiny resumable stage used by test_pipeline.py, run as a subprocess so it can be killed.

usage: python stage_worker.py OUT_DIR NUM_ITEMS DELAY_S [INPUT]
Writes item-<i>.txt atomically, one by one (skipping finished ones), and appends each
computed index to OUT_DIR/../computed.log so tests can see what was (re)computed.
"""
import sys
import time
from pathlib import Path

from asrtools.cli import setup_logging
from asrtools.pipeline import atomic_write_text, run_stage


def main() -> None:
    out_dir, num_items, delay = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    inputs = {"source": Path(sys.argv[4])} if len(sys.argv) > 4 else {}
    setup_logging()

    def body(ctx) -> None:
        for i in range(num_items):
            item = ctx.out_dir / f"item-{i}.txt"
            if item.exists():
                continue
            time.sleep(delay)
            atomic_write_text(item, f"value {i * i}\n" * 1000)
            with open(out_dir.parent / "computed.log", "a") as log:
                log.write(f"{i}\n")

    run_stage(out_dir, "test worker", {"num_items": num_items}, inputs, body)


if __name__ == "__main__":
    main()
