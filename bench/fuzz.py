"""10 million inputs through the fuzz target of fuzz/answer.py (the packet parser and the
answering core), coverage-guided by atheris, as issue 15 asks: no exception, no hang and
no reply that fails to parse.

    .venv/bin/python bench/fuzz.py                    # 10,000,000 inputs, 2 workers
    .venv/bin/python bench/fuzz.py --runs 200000 --workers 1

Each worker is a libFuzzer process of its own (its own -seed, the runs shared out), all
growing one corpus (fuzz/corpus plus what they find, kept in --corpus); a crash or a hang
(--timeout seconds for one input) stops its worker and is written to --artifacts.
(libFuzzer's -fork and -jobs modes start argv[0] again, a script that is not executable.)
Prints the inputs run, the rate, the coverage reached and each failure; exits 1 if any.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "fuzz" / "answer.py"
SEEDS = ROOT / "fuzz" / "corpus"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000_000, help="inputs in all (default 10,000,000)")
    parser.add_argument("--workers", type=int, default=2, help="processes fuzzing at once (default 2)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take: a hang")
    parser.add_argument("--corpus", type=Path, help="where the grown corpus is kept (default: a temp dir)")
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"), help="crashes and hangs")
    args = parser.parse_args()
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="dynserver-fuzz-"))
    corpus.mkdir(parents=True, exist_ok=True)
    args.artifacts.mkdir(parents=True, exist_ok=True)
    share = -(-args.runs // args.workers)
    logs = [Path(tempfile.mkstemp(prefix=f"fuzz-worker{n}-", suffix=".log")[1]) for n in range(args.workers)]
    started = time.monotonic()
    workers = []
    for number, log in enumerate(logs):
        command = [
            sys.executable,
            str(TARGET),
            f"-seed={number + 1}",
            f"-runs={share}",
            f"-timeout={args.timeout}",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={args.artifacts.resolve()}/",
            str(corpus),
            str(SEEDS),
        ]
        print(" ".join(command), flush=True)
        with open(log, "w") as out:
            workers.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))
    codes = [worker.wait() for worker in workers]
    elapsed = time.monotonic() - started
    runs = cov = 0
    failures: list[str] = []
    for log in logs:
        text = log.read_text(errors="replace")
        executed = re.findall(r"stat::number_of_executed_units: (\d+)", text)
        runs += int(executed[-1]) if executed else 0
        edges = re.findall(r"cov: (\d+)", text)
        cov = max(cov, int(edges[-1]) if edges else 0)
        failures += re.findall(r"Test unit written to (\S+)", text)
        if "Uncaught Python exception" in text or "ERROR: libFuzzer" in text:
            print(f"--- {log}:\n" + "\n".join(text.splitlines()[-40:]))
    units = len(list(corpus.iterdir()))
    print(f"inputs {runs:,} in {elapsed:.0f} s ({runs / elapsed:,.0f}/s with {args.workers} workers)")
    print(f"coverage: {cov} edges; corpus {units} inputs, kept in {corpus}; logs: {' '.join(map(str, logs))}")
    print(f"failures (crashes, hangs, out of memory): {len(failures)}")
    for name in failures:
        print(f"  {name}: replay with .venv/bin/python {TARGET.relative_to(ROOT)} {name}")
    return 1 if failures or any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
