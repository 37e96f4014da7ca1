"""The big parser trial: load thousands of mutated catalogue files and count the outcomes.

    python benchmarks/parser_trial.py [TRIALS] [SEED] [MUTATION]

Each file is loaded in this process through `load_scenario` (what `txnlab show/run`
call) with a 2 s alarm and a 1 GB address-space budget, and classified: loaded, a clean
error (one line, `file:N: ...`), a clean error without a line number, or a failure by
kind (traceback by exception class, multi-line or overlong message, hang, memory).
MUTATION limits the trial to one kind (e.g. alias_bomb). Not part of the test suite: tests/chaos/test_parser_fuzz.py is the bounded version.
"""

from __future__ import annotations

import collections
import random
import re
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

from parser_mutations import MUTATIONS, YAML_FILES, mutate  # noqa: E402

from txnlab.errors import TxnlabError  # noqa: E402
from txnlab.scenario import load_scenario  # noqa: E402

TIME_LIMIT_S = 2.0
MEMORY_BUDGET = 1 << 30


class Hang(Exception):
    """Raised by the alarm when one file takes longer than TIME_LIMIT_S."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def classify(path: Path) -> str:
    """One outcome word for loading `path`."""
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    try:
        load_scenario(path)
        return "loaded"
    except Hang:
        return "failure: hang"
    except MemoryError:
        return "failure: memory"
    except TxnlabError as exc:
        message = str(exc)
        if "\n" in message:
            return "failure: message on several lines"
        if len(message) > len(str(path)) + 300:
            return "failure: overlong message"
        if re.match(re.escape(str(path)) + r":\d+: ", message):
            return "clean error with file:line"
        if "larger than" in message:
            return "clean error without a line: file too large"
        return "clean error without a line"
    except BaseException as exc:  # noqa: BLE001 - every escape is what we count
        return f"failure: traceback {type(exc).__name__}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10_500
    rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 8)
    signal.signal(signal.SIGALRM, _alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_BUDGET, hard))
    sys.setrecursionlimit(1000)
    outcomes: collections.Counter[str] = collections.Counter()
    by_mutation: collections.Counter[tuple[str, str]] = collections.Counter()
    slowest = slowest_cpu = 0.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(trials):
            original = rnd.choice(YAML_FILES)
            if len(sys.argv) > 3:
                names = [sys.argv[3]]
                data = MUTATIONS[names[0]](original.read_bytes(), rnd)
            else:
                data, names = mutate(original.read_bytes(), rnd, rnd.choice([1, 1, 2, 3]))
            path = Path(tmp) / f"{n:05d}-{original.name}"
            path.write_bytes(data)
            t0, cpu0 = time.perf_counter(), time.process_time()
            outcome = classify(path)
            slowest = max(slowest, time.perf_counter() - t0)
            slowest_cpu = max(slowest_cpu, time.process_time() - cpu0)
            outcomes[outcome] += 1
            if outcome.startswith("failure"):
                by_mutation[(outcome, "+".join(names))] += 1
            path.unlink()
    print(
        f"trials: {trials} in {time.perf_counter() - started:.1f} s, slowest {slowest * 1000:.0f} ms "
        f"({slowest_cpu * 1000:.0f} ms of CPU)"
    )
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome}: {count}")
    for (outcome, names), count in by_mutation.most_common(15):
        print(f"    {outcome} after {names}: {count}")


if __name__ == "__main__":
    main()
