"""A training script that reports its epochs as taskmeter tasks.

Run it under ``taskmeter run`` and its tasks become the run's subtasks::

    taskmeter run -o runs/train.json -- python examples/train.py --epochs 3
    taskmeter show runs/train.json
"""

from __future__ import annotations

import argparse

from taskmeter import Task


def train_epoch(size: int) -> int:
    """Stand-in for one epoch of work: burns CPU in proportion to ``size``."""
    return sum(i * i for i in range(size))


def main() -> None:
    """Train for ``--epochs`` epochs, each one a subtask of ``train``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="number of epochs (default 3)")
    parser.add_argument("--size", type=int, default=1_000_000, help="work per epoch")
    args = parser.parse_args()
    with Task("train"):
        for epoch in range(args.epochs):
            with Task(f"epoch {epoch}"):
                train_epoch(args.size)


if __name__ == "__main__":
    main()
