"""Benchmark: the consumer engine against PGMQ itself (and procrastinate, when installed).

    .venv/bin/python bench/bench_consumer.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: each part runs in a scratch database of its own (created, migrated,
dropped). Printed, in one run:

(e) pickup latency on idle consumers: enqueue committed -> handler started (both on this
    machine's monotonic clock), one job at a time, for our worker (``queue_job``) and for the
    yardstick, raw PGMQ woken by LISTEN (bench/_yardstick.py: one connection LISTENs and reads
    on each notification), the samples alternating; p50, p99 and ours / raw (goals: p50
    <= 1.3x, p99 <= 3x);
(a) raw PGMQ batched consume: ``pgmq.read(queue, 30, 100)`` then ``pgmq.delete(queue,
    ids[])`` in a loop on one connection until N messages are gone -- messages per second,
    the queue's own ceiling here;
(b) one ``dragonfly worker enrich`` process with a no-op handler, exactly-once bookkeeping on
    (claim, completed_jobs record, fenced delete, one commit per batch): N jobs enqueued
    with ``queue_job`` in one transaction while the worker is idle; jobs per second from
    that commit until ``dragonfly.completed_jobs`` holds all N;
    (a) and (b) alternate for ``--rounds`` rounds in one database (a on the outreach
    queue, b on enrich) and the medians are kept: this machine is shared, a single
    round can be off by several times;
(c) b / a per round (a and b run seconds apart, under the same outside load), median over
    the rounds (goal >= 0.7);
(d) the same no-op workload through procrastinate (``pip install -e '.[bench]'``), one
    worker process, same concurrency: jobs per second, and our ratio to it;
(f) the worker's resident memory after all rounds of (b) (VmRSS, and its peak VmHWM).

The load average is printed at the start, with each round and at the end.
The worker runs with the default settings (those that matter are printed); its JSON log goes
to a temporary file at the default level (INFO: one ``batch_committed`` line per batch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._scratch import as_url, scratch_database  # noqa: E402
from bench._stats import percentile  # noqa: E402
from bench._yardstick import raw_pgmq  # noqa: E402
from bench.bench_queue_job import seed_case  # noqa: E402
from workers.runtime import JobContext, JobKind  # noqa: E402
from workers.settings import Settings  # noqa: E402

# -- the jobs the benchmarked worker runs (``--handler bench.bench_consumer:NOOP``) --------


class BenchPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    case_id: str


def _noop(_ctx: JobContext, _payload: BenchPayload) -> None:
    pass


def _stamp(ctx: JobContext, _payload: BenchPayload) -> None:
    started = time.monotonic()
    n = int(ctx.envelope.idempotency_key.rpartition("-")[2])
    ctx.conn.execute("insert into bench_pickup (n, started) values (%s, %s)", (n, started))


NOOP = JobKind(kind="enrich", payload=BenchPayload, handle=_noop)
STAMP = JobKind(kind="enrich", payload=BenchPayload, handle=_stamp)

# queue_job checks that the case an enrich job names exists (bench_queue_job.seed_case).
ENQUEUE_ALL = (
    "select pg_catalog.count(public.queue_job(pg_catalog.jsonb_build_object("
    "'kind', 'enrich', 'idempotency_key', %s || g,"
    " 'payload', pg_catalog.jsonb_build_object('case_id', %s::text)"
    "))) from generate_series(1, %s) as g"
)


# -- (a) -------------------------------------------------------------------------------------


# -- the worker process -------------------------------------------------------------------


class Worker:
    def __init__(self, url: str, handler: str, env: dict[str, str]) -> None:
        url = as_url(url)
        self.log = Path(f"/tmp/bench-consumer-{os.getpid()}-{time.monotonic_ns()}.log")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGONFLY_")}
        full_env.update(
            {
                "DATABASE_URL": url,
                "DRAGONFLY_METRICS_PORT": "0",
                "DRAGONFLY_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO),
                **env,
            }
        )
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "enrich", "--handler", handler],
            env=full_env,
            cwd=str(REPO),
            stdout=subprocess.DEVNULL,
            stderr=self._out,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if '"listener_connected"' in self.log.read_text():
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited:\n{self.log.read_text()}")
            time.sleep(0.05)
        raise SystemExit("worker did not become ready")

    def memory_kib(self) -> tuple[int, int]:
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else "0"
        return int(fields["VmRSS"]), int(fields["VmHWM"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self._out.close()
        self.log.unlink(missing_ok=True)


def _count_done(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select count(*) from dragonfly.completed_jobs").fetchone()
    return int(row[0]) if row else 0


# -- (b) + (f) -------------------------------------------------------------------------------


def worker_throughput(url: str, worker: Worker, n: int, round_no: int, case_id: str) -> float:
    """One round: N jobs enqueued in one transaction on the idle worker; jobs/s to done."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("truncate dragonfly.completed_jobs")
        conn.execute("vacuum analyze pgmq.q_enrich")
        conn.execute("vacuum analyze dragonfly.completed_jobs")
        time.sleep(0.5)  # let the worker settle back to waiting on its LISTEN
        with conn.transaction():
            conn.execute(ENQUEUE_ALL, (f"job-{round_no}-", case_id, n))
        row = conn.execute("select clock_timestamp()").fetchone()
        assert row is not None
        committed = row[0]
        # Polled slowly (a count over the table costs the database); the end time is the
        # last batch's own completed_at (its transaction start: ~one batch early at most).
        while _count_done(conn) < n:
            if worker.proc.poll() is not None:
                raise SystemExit(f"worker exited:\n{worker.log.read_text()}")
            time.sleep(0.2)
        row = conn.execute("select max(completed_at) from dragonfly.completed_jobs").fetchone()
        assert row is not None
        return n / (row[0] - committed).total_seconds()


# -- (e) -------------------------------------------------------------------------------------


def _wait_stamp(conn: psycopg.Connection[Any], n: int, committed: float) -> float:
    while True:
        row = conn.execute("select started from bench_pickup where n = %s", (n,)).fetchone()
        if row:
            return (float(row[0]) - committed) * 1000
        time.sleep(0.0005)


def pickup_latency(url: str, samples: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """(ours, raw): commit of an enqueue -> handler start, one job at a time, idle consumers.

    Both consumers run side by side and the samples alternate (raw PGMQ woken by LISTEN,
    bench/_yardstick.py, then our worker), so both see the same outside load."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table bench_pickup (n integer primary key, started float8)")
        case_id = seed_case(conn)  # type: ignore[arg-type]
    worker = Worker(url, "bench.bench_consumer:STAMP", env)
    raw = subprocess.Popen(
        [sys.executable, "-m", "bench._yardstick", url],
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    ours: list[float] = []
    raws: list[float] = []
    try:
        assert raw.stdout is not None
        if raw.stdout.readline().strip() != "ready":
            raise SystemExit("raw LISTEN consumer did not start")
        worker.wait_ready()
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(1, samples + 1):
                time.sleep(0.02)  # let both go idle (waiting on their LISTEN)
                with conn.transaction():
                    conn.execute(
                        "select pgmq.send('outreach', pg_catalog.jsonb_build_object('kind',"
                        " 'outreach', 'idempotency_key', 'lat-' || %s, 'payload',"
                        " pg_catalog.jsonb_build_object('n', %s)))",
                        (i, i),
                    )
                raws.append(_wait_stamp(conn, -i, time.monotonic()))
                time.sleep(0.02)
                with conn.transaction():
                    conn.execute(
                        "select public.queue_job(pg_catalog.jsonb_build_object('kind', 'enrich',"
                        " 'idempotency_key', 'lat-' || %s, 'payload',"
                        " pg_catalog.jsonb_build_object('case_id', %s::text)))",
                        (i, case_id),
                    )
                ours.append(_wait_stamp(conn, i, time.monotonic()))
    finally:
        raw.terminate()
        raw.wait(10)
        worker.stop()
    return ours, raws


# -- (d) -------------------------------------------------------------------------------------

PROCRASTINATE_APP = """
import procrastinate
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo={url!r}))

@app.task(queue="bench", name="noop")
async def noop(n):
    pass
"""


def procrastinate_throughput(url: str, n: int, concurrency: int) -> float | None:
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        return None
    app_dir = Path(f"/tmp/bench-procrastinate-{os.getpid()}")
    app_dir.mkdir(exist_ok=True)
    (app_dir / "bench_pc_app.py").write_text(PROCRASTINATE_APP.format(url=url))
    env = {**os.environ, "PYTHONPATH": f"{app_dir}:{REPO}"}
    py = sys.executable
    subprocess.run(
        [py, "-m", "procrastinate", "--app=bench_pc_app.app", "schema", "--apply"],
        env=env,
        check=True,
        capture_output=True,
    )
    # Defer N jobs in one transaction, straight into procrastinate's table (its own
    # defer is one round trip per job; this keeps enqueueing out of the measurement).
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into procrastinate_jobs (queue_name, task_name, args)"
            " select 'bench', 'noop', jsonb_build_object('n', g) from generate_series(1, %s) g",
            (n,),
        )
        conn.execute("vacuum analyze procrastinate_jobs")
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                py,
                "-m",
                "procrastinate",
                "--app=bench_pc_app.app",
                "worker",
                f"--concurrency={concurrency}",
                "--queues=bench",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                row = conn.execute(
                    "select count(*) from procrastinate_jobs where status = 'succeeded'"
                ).fetchone()
                if row and row[0] >= n:
                    break
                if proc.poll() is not None:
                    raise SystemExit("procrastinate worker exited")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(60)
    return n / elapsed


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="admin URL (creates databases)")
    parser.add_argument("--messages", type=int, default=20000, help="N for (a) and (b)")
    parser.add_argument("--rounds", type=int, default=4, help="(a)/(b) rounds; medians kept")
    parser.add_argument("--procrastinate-messages", type=int, default=5000, help="N for (d)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="worker batch size (default: the setting's)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker slots (default: the setting's)"
    )
    parser.add_argument("--samples", type=int, default=300, help="pickup latency samples")
    parser.add_argument("--skip-procrastinate", action="store_true")
    parser.add_argument("--skip-pickup", action="store_true")
    parser.add_argument("--skip-drain", action="store_true")
    args = parser.parse_args()
    fields = Settings.model_fields
    batch_size = args.batch_size or fields["batch_size"].default
    concurrency = args.concurrency or fields["worker_concurrency"].default
    env = {}
    if args.batch_size:
        env["DRAGONFLY_BATCH_SIZE"] = str(args.batch_size)
    if args.concurrency:
        env["DRAGONFLY_WORKER_CONCURRENCY"] = str(args.concurrency)
    print(
        f"machine: {os.cpu_count()} cores, load {_load()}; N = {args.messages},"
        f" {args.rounds} rounds; worker: batch {batch_size}, concurrency {concurrency}"
        f" ({'set on the command line' if env else 'the defaults'}), JSON log at INFO to a file",
        flush=True,
    )
    figures: dict[str, Any] = {}
    if not args.skip_pickup:
        figures.update(_pickup(args, env))
    if not args.skip_drain:
        figures.update(_drain(args, env, concurrency))
    print(f"load at the end: {_load()}")
    print(json.dumps(figures))
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _pickup(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with scratch_database(args.database_url, "df_bench_consumer_e") as url:
        lat, raw = pickup_latency(url, args.samples, env)
    p50, p99 = statistics.median(lat), percentile(lat, 99)
    r50, r99 = statistics.median(raw), percentile(raw, 99)
    print(
        f"(e) pickup, enqueue commit -> handler start, idle consumers, {len(lat)} jobs each,"
        f" alternating (load {_load()}):\n"
        f"    raw PGMQ woken by LISTEN: p50 {r50:.2f} ms, p99 {r99:.2f} ms, max {max(raw):.2f} ms\n"
        f"    dragonfly worker:         p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(lat):.2f} ms\n"
        f"    ours / raw:               p50 {p50 / r50:.2f}x (goal <= 1.3),"
        f" p99 {p99 / r99:.2f}x (goal <= 3)",
        flush=True,
    )
    return {
        "pickup_p50_ms": round(p50, 2),
        "pickup_p99_ms": round(p99, 2),
        "raw_pickup_p50_ms": round(r50, 2),
        "raw_pickup_p99_ms": round(r99, 2),
        "pickup_p50_ratio": round(p50 / r50, 2),
        "pickup_p99_ratio": round(p99 / r99, 2),
    }


def _drain(args: argparse.Namespace, env: dict[str, str], concurrency: int) -> dict[str, Any]:
    n = args.messages
    raws: list[float] = []
    ours_: list[float] = []
    with scratch_database(args.database_url, "df_bench_consumer_ab") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            case_id = seed_case(conn)  # type: ignore[arg-type]
        worker = Worker(url, "bench.bench_consumer:NOOP", env)
        try:
            worker.wait_ready()
            for r in range(1, args.rounds + 1):
                raws.append(raw_pgmq(url, n, 100))
                ours_.append(worker_throughput(url, worker, n, r, case_id))
                print(
                    f"    round {r}: (a) {raws[-1]:,.0f} msgs/s, (b) {ours_[-1]:,.0f} jobs/s,"
                    f" b/a {ours_[-1] / raws[-1]:.2f} (load {_load()})",
                    flush=True,
                )
            rss, hwm = worker.memory_kib()
        finally:
            worker.stop()
    raw, ours = statistics.median(raws), statistics.median(ours_)
    # Each round's (a) and (b) run seconds apart, under the same load from whatever
    # else shares the machine: the ratio is taken per round, then its median.
    ratio = statistics.median(b / a for a, b in zip(raws, ours_, strict=True))
    print(f"(a) raw PGMQ read 100 + delete[]:      {raw:10,.0f} msgs/s (median)", flush=True)
    print(f"(b) dragonfly worker, no-op handler:   {ours:10,.0f} jobs/s (median)", flush=True)
    print(
        f"(c) b / a:                             {ratio:10.2f}   (median of the rounds' ratios;"
        " goal >= 0.7)",
        flush=True,
    )
    pc = None
    if not args.skip_procrastinate:
        with scratch_database(args.database_url, "df_bench_consumer_d") as url:
            pc = procrastinate_throughput(url, args.procrastinate_messages, concurrency)
    if pc is None:
        print("(d) procrastinate:                      not run or not installed")
    else:
        print(
            f"(d) procrastinate worker, no-op task:  {pc:10,.0f} jobs/s;"
            f" dragonfly / procrastinate = {ours / pc:.1f}x"
        )
    print(
        f"(f) worker memory after all rounds of (b): RSS {rss / 1024:.1f} MiB,"
        f" peak {hwm / 1024:.1f} MiB"
    )
    return {
        "raw_msgs_per_s": round(raw),
        "worker_jobs_per_s": round(ours),
        "drain_ratio": round(ratio, 3),
        "procrastinate_jobs_per_s": round(pc) if pc else None,
        "rss_mib": round(rss / 1024, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
