"""A whole class at once: N students stream live speech to one app server; how many does it hold?

    sudo .venv/bin/python bench/bench_class.py [--students 1 5 10 20 30 40 50] [--seconds 120] [--profile 30]

For each N, a fresh app server (the default model) and N students who all press START at the same moment: one
real Chromium with a fake microphone, the others aiortc clients (bench/class_client.py) that open the Live page
over Streamlit's WebSocket and stream speech as Opus over WebRTC, as a browser does. Meanwhile another Chromium
uploads a clip on the home page every UPLOAD_EVERY seconds. Everything runs on this machine, in a loopback-only
network namespace (root, unshare, ip), as tests/e2e does, so the students' own work shares the server's cores:
the figures are for a server that also plays thirty laptops.

Per N it prints the time from a window's end to its result reaching the student's page (median and p95 over all
results, and the worst student's p95), windows the server dropped to keep up, the share of windows whose result
the page drew (it draws the newest when it wakes, so a slow page skips some), sessions lost (no result in the last
LOST_AFTER seconds, or a failed connection; whether their WebRTC connections were still up and how much speech
their clients had sent), how often the page said the server is busy, the upload's time to a result, and the app's
CPU (cores) and memory. It stops raising N once p95 passes BROKEN_P95. --processes P spreads
the students over P app processes, as docs/deploy.md's nginx site does. --profile N then runs a class of N more,
samples the (first) app process with py-spy, counting only the thread that holds Python's lock, and says where
that time goes (sampling stops the process, so that class's figures are not reported).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.audio import load_audio  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from tests.conftest import known_clip  # noqa: E402
from tests.e2e.live_session import TIME_RESULTS, server_rss_mb  # noqa: E402
from tests.e2e.test_browser import (CHROMIUM, fake_microphone, free_port, in_loopback_namespace,  # noqa: E402
                                    wait_until_healthy)

LEVELS = (1, 5, 10, 20, 30, 40, 50)
TARGET_P95 = 1.0  # s, window end -> result on the student's page
BROKEN_P95 = 3.0  # s; past this a level counts as broken and N stops rising
LOST_AFTER = 10.0  # s without a result at the end of the stream: the session is lost
STUDENTS_PER_CLIENT = 10  # aiortc students per client process
UPLOAD_EVERY = 10.0  # s between the uploader's clips
HOP = 0.5  # s, the Live page's default hop
VOICES = 6  # different speech files the students play
# Where the server's time goes: the first of these found in a sampled stack, innermost frame first.
PLACES = (("classifying windows (features and model)", ("ser_core/live.py", "ser_core/inference.py")),
          ("receiving audio (WebRTC, Opus decoding)", ("aiortc/", "aioice/", "av/", "streamlit_webrtc/")),
          ("drawing the Live page (script and Streamlit messages)", ("pages/", "streamlit/")),
          ("the web server and its event loop", ("uvicorn/", "starlette/", "asyncio/", "websockets/")))


def speech_files(data_dir: str, folder: Path) -> list[str]:
    """VOICES files of about a minute of RAVDESS speech each, one actor per file, at 48 kHz as a browser sends."""
    catalog = build_catalog(data_dir, ["ravdess"])
    files = []
    for i, (speaker, clips) in enumerate(list(catalog.groupby("speaker"))[:VOICES]):
        speech = np.concatenate([load_audio(path, sr=48_000) for path in clips.path.head(20)])
        files.append(str(folder / f"voice{i}.wav"))
        sf.write(files[-1], speech, 48_000, subtype="PCM_16")
    return files


class ServerMeter(threading.Thread):
    """The app processes' CPU (cores used, all together) and memory (summed), every half second."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.cores, self.rss_mb, self.running = pids, [], [], True

    def _ticks(self) -> int:
        ticks = 0
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    def run(self) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        last, last_at = self._ticks(), time.time()
        while self.running:
            time.sleep(0.5)
            ticks, now = self._ticks(), time.time()
            self.cores.append((ticks - last) / hz / (now - last_at))
            last, last_at = ticks, now
            self.rss_mb.append(sum(server_rss_mb(pid) for pid in self.pids))


async def browser_student(browser, url: str, seconds: float) -> dict:
    """One student in real Chromium: START on the Live page, and every result's lag as the page notes it."""
    context = await browser.new_context(permissions=["microphone"], viewport={"width": 1024, "height": 768})
    await context.add_init_script(TIME_RESULTS)
    page = await context.new_page()
    record = {"lags_ms": [], "error": None}
    try:
        await page.goto(f"{url}/Live", timeout=120_000)
        start = page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="START")
        await start.click(timeout=120_000)
        await asyncio.sleep(seconds)
        record["lags_ms"] = await page.evaluate("window.__lags || []")
    except Exception as error:
        record["error"] = f"{type(error).__name__}: {error}"
    await context.close()
    return record


async def uploader(browser, url: str, seconds: float, data_dir: Path) -> list[float]:
    """Seconds from each upload on the home page to its emotion on the page, two known clips in turn."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1024, "height": 768})
    page = await context.new_page()
    times = []
    clips = [known_clip(data_dir, label) for label in ("angry", "sad")]
    end = time.time() + seconds
    try:
        await page.goto(url, timeout=60_000)
        while time.time() < end - UPLOAD_EVERY:
            clip, label = clips[len(times) % 2]
            began = time.time()
            await page.set_input_files('input[type="file"]', str(clip), timeout=60_000)
            await expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(label, timeout=60_000)
            times.append(time.time() - began)
            await asyncio.sleep(max(0.0, began + UPLOAD_EVERY - time.time()))
    except Exception:  # the home page or its answer took over a minute: the class saw it fail
        times.append(math.inf)
    await context.close()
    return times


async def chromium_part(url: str, seconds: float, voice: str, data_dir: Path) -> tuple[dict, list[float]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=fake_microphone(voice))
        student, uploads = await asyncio.gather(browser_student(browser, url, seconds),
                                                uploader(browser, url, seconds, data_dir))
        await browser.close()
    return student, uploads


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """py-spy samples the stack of the thread holding Python's lock (the GIL): one process runs Python on one core
    at a time, so that is what a class uses up first."""
    return subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record",
                             "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50", "--gil",
                             "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def where_the_time_goes(raw: Path) -> dict[str, float]:
    """Share of the samples by PLACES."""
    counts = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")[::-1]  # innermost first
        place = next((name for name, marks in PLACES
                      if any(mark in frame for frame in frames for mark in marks)), "other")
        counts[place] += int(count)
    total = sum(counts.values()) or 1
    return {place: counts[place] / total for place, _ in [*PLACES, ("other", ())]}


def run_level(n: int, seconds: float, voices: list[str], data_dir: Path, folder: Path, processes: int = 1,
              profile_seconds: float = 0) -> dict:
    """One class of n students against fresh app processes, the students spread over them as the nginx site of
    docs/deploy.md spreads browsers; its figures."""
    env = {**os.environ, "SER_CACHE_DIR": str(folder / "cache"), "SER_USER_MODELS_DIR": str(folder / "models"),
           "SER_DATA_DIR": str(data_dir)}
    ports = [free_port() for _ in range(processes)]
    servers = [subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address",
                                 "127.0.0.1", "--server.port", str(port), "--server.headless", "true"], cwd=ROOT,
                                env=env, stdout=(folder / f"server-{n}-{port}.log").open("w"),
                                stderr=subprocess.STDOUT) for port in ports]
    try:
        urls = [wait_until_healthy(port) for port in ports]
        meter = ServerMeter([server.pid for server in servers])
        meter.start()
        robots = [(urls[(i + 1) % processes], voices[(i + 1) % len(voices)]) for i in range(n - 1)]
        clients = []
        for i in range(0, len(robots), STUDENTS_PER_CLIENT):
            out = folder / f"students-{n}-{i}.json"
            pairs = [part for robot in robots[i:i + STUDENTS_PER_CLIENT] for part in robot]
            clients.append((out, subprocess.Popen([sys.executable, str(ROOT / "bench" / "class_client.py"),
                                                   str(seconds), str(out), *pairs])))
        spy = None
        if profile_seconds:
            time.sleep(seconds / 4)  # everyone streams by now
            spy = profile(servers[0].pid, profile_seconds, folder / "profile.txt")
        student, uploads = asyncio.run(chromium_part(urls[0], seconds, voices[0], data_dir))
        students = [student]
        for out, client in clients:
            client.wait(timeout=seconds + 300)
            students += json.loads(out.read_text())
        if spy:
            spy.wait(timeout=60)
        meter.running = False
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    return summarise(n, processes, students, uploads, meter,
                     where_the_time_goes(folder / "profile.txt") if profile_seconds else None)


def summarise(n: int, processes: int, students: list[dict], uploads: list[float], meter: ServerMeter,
              places: dict | None) -> dict:
    lags = np.concatenate([np.asarray(s["lags_ms"], dtype=float) for s in students]) / 1000
    lost = [s for s in students if s["error"] or not s["lags_ms"] or
            s.get("last_result_at", math.inf) < s.get("stream_end", 0) - LOST_AFTER]
    robots = [s for s in students if s.get("starts")]  # the aiortc students, who read every drawn result
    made = sum(round(s["starts"][-1] / HOP) + 1 for s in robots)  # windows each stream made, up to its last
    worst = max((np.percentile(s["lags_ms"], 95) / 1000 for s in students if s["lags_ms"]), default=math.nan)
    return {"students": n, "processes": processes, "results": int(lags.size),
            "median_s": float(np.median(lags)) if lags.size else math.nan,
            "p95_s": float(np.percentile(lags, 95)) if lags.size else math.nan, "worst_student_p95_s": worst,
            "dropped_share": sum(s["dropped"] for s in robots) / made if robots else math.nan,
            "drawn_share": sum(len(s["starts"]) for s in robots) / made if robots else math.nan, "lost": len(lost),
            # where a lost session stalled: was its WebRTC connection still up, and did its client keep sending?
            "lost_connected": sum(1 for s in lost if s.get("connection") == "connected"),
            "lost_audio_sent_s": float(np.median([s["audio_sent_s"] for s in lost if "audio_sent_s" in s] or [0])),
            "busy_shown": sum(s.get("busy_shown", 0) for s in students),
            "upload_median_s": float(np.median(uploads)) if uploads else math.nan,
            "uploads": len(uploads), "cpu_cores": float(np.mean(meter.cores[4:] or meter.cores)),
            "rss_peak_mb": max(meter.rss_mb), "rss_end_mb": meter.rss_mb[-1],
            "errors": sorted({s["error"] for s in students if s["error"]}), "places": places}


def print_table(rows: list[dict]) -> None:
    print("| students | app processes | results | median | p95 | worst student's p95 | windows dropped | results "
          "drawn | sessions lost | busy warnings | upload to result | app CPU (cores) | app memory peak / end |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['students']} | {r['processes']} | {r['results']} | {r['median_s']:.2f} s | {r['p95_s']:.2f} s | "
              f"{r['worst_student_p95_s']:.2f} s | {r['dropped_share']:.1%} | {r['drawn_share']:.0%} | {r['lost']} | "
              f"{r['busy_shown']} | "
              f"{r['upload_median_s']:.1f} s ({r['uploads']}) | {r['cpu_cores']:.2f} | "
              f"{r['rss_peak_mb']:.0f} / {r['rss_end_mb']:.0f} MB |")
    for r in rows:
        if r["errors"]:
            print(f"{r['students']} students: {r['errors']}")
        if r["lost"]:
            print(f"{r['students']} students: of the {r['lost']} sessions lost, {r['lost_connected']} were still "
                  f"connected at the end; their clients sent a median {r['lost_audio_sent_s']:.0f} s of speech")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--seconds", type=float, default=120, help="how long each class streams")
    parser.add_argument("--processes", type=int, default=1, help="app processes on this machine (docs/deploy.md)")
    parser.add_argument("--profile", type=int, default=0, help="then sample a class of this many with py-spy")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not os.environ.get("SER_BENCH_NAMESPACE"):  # WebRTC on loopback needs its own namespace (tests/e2e)
        command = ["env", "SER_BENCH_NAMESPACE=1", sys.executable, *sys.argv]
        sys.exit(subprocess.run(in_loopback_namespace(command), cwd=ROOT).returncode)
    print(f"{os.cpu_count()} cores; default model; window {config.WINDOW:g} s, hop {HOP:g} s; "
          f"{args.seconds:.0f} s per class; {args.processes} app process(es); students all press START at once",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        voices = speech_files(args.data_dir, folder)
        for n in args.students:
            rows.append(run_level(n, args.seconds, voices, Path(args.data_dir), folder, args.processes))
            print_table(rows[-1:])
            if rows[-1]["p95_s"] > BROKEN_P95 or rows[-1]["lost"] > n // 10:
                break
        print()
        print_table(rows)
        if args.profile:  # a class of its own: py-spy stops the process at every sample, which costs it students
            places = run_level(args.profile, args.seconds, voices, Path(args.data_dir), folder, args.processes,
                               profile_seconds=args.seconds / 2)["places"]
            print(f"where the app's Python time goes at {args.profile} students: " +
                  ", ".join(f"{place} {share:.0%}" for place, share in places.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
