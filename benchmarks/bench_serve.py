"""Load and fault benchmark of `derive serve` on the loopback (issue 15).

    python benchmarks/bench_serve.py [--answers 2000] [--clients 20] [--workers 2] [--kill-after 0]

Starts `derive serve --course` (a course of the five scalar models' questions, every one prepared at
start, a SQLite database) in a child process, and has --clients threads submit --answers answers to
POST /api/grade, each as a different student: correct, mistaken and unreadable answers drawn from
benchmarks/bench_grade.py's pool for the scalar models, and elman's matrix answers made here. Then it checks:
  * every answer was acknowledged (HTTP 200) and is in the database, with its text and verdict;
  * every verdict (and named mistake) equals the one `derive grade MODEL --answers FILE` gives the same
    answers (the command line, run afterwards);
and prints the latency (median, p95, max) per answer as a client sees it, and the throughput.

--kill-after N kills the server (SIGKILL) once N answers are acknowledged, while the clients keep
sending; the clients record which were acknowledged; the server is restarted on the same database and
the rest of the load goes to it. Every acknowledged submission must then be in the database.
Prints a Markdown section (the form benchmarks/RESULTS.md keeps).
"""
from __future__ import annotations

import argparse
import csv
import http.client
import datetime
import json
import os
import platform
import queue
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
SCALAR = ["linear-rnn", "sigmoid-rnn", "tanh-rnn", "backprop-net", "lstm-cell"]
MATRIX = ["elman"]
MODELS = SCALAR + MATRIX
MATRIX_QUESTIONS = ["delta_h_2", "delta_a_2", "W", "U", "V", "b"]
GOAL_P95 = 0.5


def question_id(wrt: str, params: set[str]) -> str:
    """The course's name of a bench_grade question: a parameter as is, a quantity's adjoint as delta_q_k."""
    return wrt if wrt in params else "delta_" + wrt


def matrix_pool(name: str, rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(question, wrt, answer, kind) for a vector model: the solution as the sheet writes it (plain, LaTeX, terms
    reordered) and wrong ones (sign, factor 2, a term left out, transposed, the README's missing path),
    and unreadable ones (shapes that contradict each other, an unknown name)."""
    import derive
    from derive.grade.dispatch import prepare
    from derive.printing.plain import plain
    from derive.printing.latex import latex

    model = derive.load(name)
    out = []
    for q in MATRIX_QUESTIONS:
        compact = prepare(model, 3, q).reference.compact
        terms = [plain(t) for t in compact.args] if compact.is_Add else [plain(compact)]
        text = plain(compact)
        out += [(q, q, text, "correct"), (q, q, latex(compact), "correct"),
                (q, q, " + ".join(rng.sample(terms, len(terms))), "correct")]
        out += [(q, q, f"-({text})", "mistake"), (q, q, f"2*({text})", "mistake"), (q, q, f"({text}).T", "mistake")]
        out += [(q, q, " + ".join(t for j, t in enumerate(terms) if j != i), "mistake")
                for i in range(len(terms)) if len(terms) > 1]
        out += [(q, q, "W @ x_2", "unreadable"), (q, q, "W_hh @ h_1", "unreadable")]
    out.append(("delta_a_2", "delta_a_2", "W.T @ delta_a_3 * (1 - h_2**2)", "mistake"))
    return out


def make_answers(n: int, seed: int = 0) -> list[dict]:
    import derive
    from bench_grade import pool

    rng = random.Random(seed)
    per_model = {}
    for name in SCALAR:
        params = {p.name for p in derive.load(name).parameters}
        per_model[name] = [(question_id(w, params), w, a, k) for w, a, k in pool(name, rng)]
    for name in MATRIX:
        per_model[name] = matrix_pool(name, rng)
    out = []
    for i in range(n):
        name = MODELS[i % len(MODELS)]
        qid, wrt, answer, kind = rng.choice(per_model[name])
        out.append({"n": i, "student": f"student-{i:05d}", "model": name, "question": qid, "wrt": wrt,
                    "answer": answer, "kind": kind})
    return out


def write_course(folder: Path, answers: list[dict], workers: int) -> Path:
    lines = ['title = "load test"', "steps = 3", "show_solutions = false", 'database = "load.sqlite"',
             'token = "load-test-token"', "port = 0", f"workers = {workers}", "prepare = true", "timeout = 5"]
    for name in MODELS:
        qs = sorted({a["question"] for a in answers if a["model"] == name})
        lines += ["[[model]]", f'name = "{name}"', f"questions = {json.dumps(qs)}"]
    path = folder / "course.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_server(course: Path, threads: int) -> tuple[subprocess.Popen, str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "derive", "serve", "--course", str(course), "--threads",
                             str(threads)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            cwd=course.parent)
    for line in proc.stdout:
        if m := re.search(r"student pages: (http://\S+)", line):
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, m[1], time.monotonic() - t0
    raise SystemExit("derive serve did not start")


class Load:
    """The clients: threads taking answers from one queue; each records its latency and acknowledgement."""

    def __init__(self, answers: list[dict], clients: int):
        self.todo: queue.Queue = queue.Queue()
        for a in answers:
            self.todo.put(a)
        self.clients = clients
        self.url = None
        self.url_ready = threading.Event()
        self.results: dict[int, dict] = {}
        self.lock = threading.Lock()
        self.acknowledged = 0

    def point_to(self, url: str | None) -> None:
        self.url = url
        if url:
            self.url_ready.set()
        else:
            self.url_ready.clear()

    def client(self) -> None:
        while True:
            try:
                a = self.todo.get_nowait()
            except queue.Empty:
                return
            self.url_ready.wait()
            body = json.dumps({k: a[k] for k in ("student", "model", "question", "answer")}).encode()
            req = urllib.request.Request(self.url + "api/grade", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    out = json.loads(resp.read())
                    status = resp.status
            except urllib.error.HTTPError as exc:
                out, status = {"error": exc.read()[:200].decode(errors="replace")}, exc.code
            except (urllib.error.URLError, http.client.HTTPException, OSError):  # the server is down: send it again
                self.todo.put(a)
                time.sleep(0.05)
                continue
            latency = time.monotonic() - t0
            with self.lock:
                self.results[a["n"]] = {"status": status, "latency": latency, **out}
                if status == 200:
                    self.acknowledged += 1

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.client) for _ in range(self.clients)]
        for t in threads:
            t.start()
        return threads


def cli_verdicts(answers: list[dict], folder: Path) -> dict[int, tuple]:
    """(verdict, mistake) of every answer as `derive grade MODEL --answers FILE --json`'s report gives it."""
    out = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in MODELS:
        mine = [a for a in answers if a["model"] == name]
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "wrt", "answer"])
            for a in mine:
                w.writerow([a["n"], a["question"], a["answer"]])
        import derive

        steps = ["--steps", "3"] if derive.load(name).recurrent else []
        subprocess.run([sys.executable, "-m", "derive", "grade", name, "--answers", str(path), *steps,
                        "--report", str(folder / f"{name}.graded"), "--jobs", "2"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report = json.loads((folder / f"{name}.graded.json").read_text())
        for r in report["rows"]:
            out[int(r["id"])] = (r["verdict"], r.get("mistake"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=24)
    ap.add_argument("--kill-after", type=int, default=0, help="SIGKILL the server after N acknowledged answers")
    ap.add_argument("--baseline", type=int, default=100, help="answers sent one at a time first (the baseline)")
    args = ap.parse_args()
    from importlib.metadata import version
    import sympy
    import waitress  # noqa: F401

    load_before = os.getloadavg()[0]
    answers = make_answers(args.answers)
    with tempfile.TemporaryDirectory(prefix="derive-bench-serve-") as tmp:
        folder = Path(tmp)
        course = write_course(folder, answers, args.workers)
        proc, url, startup = start_server(course, args.threads)
        # baseline, same server and run: the first answers one at a time (one client), stored under other ids
        solo = Load([{**a, "student": "baseline-" + a["student"]} for a in answers[:args.baseline]], 1)
        solo.point_to(url)
        for t in solo.run():
            t.join()
        base = sorted(r["latency"] for r in solo.results.values())
        load = Load(answers, args.clients)
        load.point_to(url)
        t0 = time.monotonic()
        threads = load.run()
        restarts = []
        if args.kill_after:
            while load.acknowledged < args.kill_after and any(t.is_alive() for t in threads):
                time.sleep(0.01)
            load.point_to(None)  # clients that see the server gone wait for the new one
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            with load.lock:
                acked_at_kill = {n for n, r in load.results.items() if r["status"] == 200}
            proc, url, again = start_server(course, args.threads)
            restarts.append((len(acked_at_kill), again))
            load.point_to(url)
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        db = sqlite3.connect(folder / "load.sqlite")
        stored = {row[0]: row[1:] for row in db.execute("SELECT id, student, answer, verdict FROM submissions")}
        db.close()
        oracle = cli_verdicts(answers, folder)
    ok = {n: r for n, r in load.results.items() if r["status"] == 200}
    lost = [n for n, r in ok.items() if stored.get(r["id"]) != (answers[n]["student"], answers[n]["answer"],
                                                                 r["verdict"])]
    differ = [n for n, r in ok.items() if (r["verdict"], (r.get("diagnosis") or {}).get("mistake")) != oracle[n]]
    for n in differ[:int(os.environ.get("BENCH_SHOW_DIFFER", "0"))]:
        r = ok[n]
        print(answers[n], r["verdict"], r.get("diagnosis"), oracle[n], file=sys.stderr)
    lat = sorted(r["latency"] for r in ok.values())
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    kinds = {k: sum(a["kind"] == k for a in answers) for k in ("correct", "mistake", "unreadable")}
    statuses = {}
    for r in load.results.values():
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    title = "fault: the server killed mid-load and restarted" if args.kill_after else "load"
    print(f"## derive serve, {title} (issue 15): benchmarks/bench_serve.py "
          f"({datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')})\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; Python "
          f"{platform.python_version()}, SymPy {sympy.__version__}, Flask {version('flask')}, waitress "
          f"{version('waitress')}; SQLite "
          f"{sqlite3.sqlite_version} (WAL, synchronous=FULL). Shared machine: load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (2 = both cores busy).\n")
    print(f"{len(answers)} answers ({', '.join(f'{v} {k}' for k, v in kinds.items())}) to "
          f"{len({(a['model'], a['question']) for a in answers})} questions of {len(SCALAR)} scalar models and "
          f"{', '.join(MATRIX)} (matrix answers) at T = 3, "
          f"every question prepared at start ({startup:.1f} s to start); {args.clients} concurrent clients on the "
          f"loopback, each answer a POST /api/grade by another student; {args.workers} grading processes, "
          f"{args.threads} request threads.\n")
    base_p95 = base[int(0.95 * (len(base) - 1))]
    print("| run | answers acknowledged | HTTP statuses | median latency s | p95 s | max s | wall s | answers/s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    print(f"| {args.clients} clients | {len(ok)} / {len(answers)} | "
          f"{', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))} | "
          f"{statistics.median(lat):.3f} | {p95:.3f} | {lat[-1]:.3f} | {wall:.1f} | {len(ok) / wall:.1f} |")
    print(f"| baseline: 1 client, the first {len(base)} answers | {len(base)} / {len(base)} | | "
          f"{statistics.median(base):.3f} | {base_p95:.3f} | {base[-1]:.3f} | | |")
    print()
    for acked, again in restarts:
        print(f"Killed (SIGKILL) after {acked} acknowledged answers; restarted on the same database in {again:.1f} s; "
              "the clients resent what had not been acknowledged.\n")
    print(f"Acknowledged but missing from the database (or stored differently): {len(lost)}. Rows in the database: "
          f"{len(stored)} ({len(base)} of them the baseline's). Verdicts (and named mistakes) different from "
          f"`derive grade --answers`: {len(differ)}"
          f"{' ' + str(differ[:5]) if differ else ''}. Goal p95 < {GOAL_P95} s for prepared questions: "
          f"{'met' if p95 < GOAL_P95 else 'NOT met'} ({p95:.3f} s).")
    return 0 if not lost and not differ and len(ok) == len(answers) else 1


if __name__ == "__main__":
    sys.exit(main())
