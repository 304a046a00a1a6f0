#!/usr/bin/env python3
"""machine_cpu.py - the whole machine's CPU time while a command runs (and
SETTLE seconds after, while the relay files what it accepted), beside the
command's own CPU time (issue 17: how much of the 2 CPUs Guichet's delivery
takes from the relay).

    python3 scripts/profile/machine_cpu.py [--settle S] -- COMMAND...

The command's stdout goes to report.json and its stderr to err.txt in the
current folder. Prints: wall, all CPU (from /proc/stat), the command's CPU
(its rusage) and the rest (everything else on the machine).
"""
import argparse
import resource
import subprocess
import time


def busy_seconds():
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / 100.0  # USER_HZ


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("command", nargs="+")
    a = p.parse_args()
    before, started = busy_seconds(), time.time()
    with open("report.json", "w") as out, open("err.txt", "w") as err:
        subprocess.run(a.command, stdout=out, stderr=err, check=False)
    wall = time.time() - started
    time.sleep(a.settle)
    all_cpu = busy_seconds() - before
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = ru.ru_utime + ru.ru_stime
    print(f"wall {wall:.2f}s  all CPU {all_cpu:.2f}s  command {own:.2f}s  rest {all_cpu - own:.2f}s")


if __name__ == "__main__":
    main()
