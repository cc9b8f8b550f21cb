"""Run a small pool under the multiprocessing start method METHOD (spawn, forkserver), then
exit: the resource tracker (and the forkserver) it started end on their own right after,
once they read the end of the pipe this program held."""

import multiprocessing
import sys


def square(value: int) -> int:
    return value * value


if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    with context.Pool(2) as pool:
        assert pool.map(square, range(8)) == [value * value for value in range(8)]
    worker = context.Process(target=square, args=(3,))
    worker.start()
    worker.join()
    sys.exit(worker.exitcode)
