"""Learning from live calls, end to end (issue #9), on a private Asterisk + Redis + `callguard serve`:

1. four real SIP calls (two espeak-ng voices, two bona fide recordings) are guarded with capture on;
2. an administrator logs into the dashboard in headless Chromium and labels every captured chunk of them
   with the label buttons (synthetic for the espeak calls, bona fide for the others);
3. `callguard retrain` turns the labels into a challenger, which is promoted or refused with its metrics in
   `promotions.jsonl` (a refused one is kept and promoted by hand with `callguard models promote`, logged);
4. that promotion lands while a fifth call is up: the plugin hot-reloads the new model mid-call, and every
   chunk of that call is scored exactly once, first by the old model, then by the new one.

Needs Asterisk, redis-server, sipp, espeak-ng, chromium + chromium-driver and selenium (./setup installs them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from plugin.lab import Lab, audio_seconds, free_port, make_bonafide, make_synthetic, start_plugin, stop_plugin

REPO = Path(__file__).resolve().parents[2]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"
CHROMIUM = os.environ.get("CALLGUARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CALLGUARD_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_S = 30
# caller name -> (extension, kind): 100 is answered, dialled and bridged by callguard under the lab's hang-up
# policy; 300 reaches a talking called party under the watch-only policy (never hung up)
LABELLED_CALLS = {"syn-a": ("100", "synthetic"), "syn-b": ("100", "synthetic"),
                  "bona-a": ("100", "bonafide"), "bona-b": ("100", "bonafide")}
LONG_CALL = "long"
LONG_CALL_S = 100.0


def _missing() -> str | None:
    for tool in ("asterisk", "redis-server", "sipp", "espeak-ng"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"not installed: {tool}"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install the Debian package {package} (./setup does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not (REPO / "models" / "gbm.txt").is_file():
        return "the shipped GBM model is missing"
    return None


pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.skipif(_missing() is not None,
                                                                            reason=_missing() or "")]


@pytest.fixture
def loop_lab() -> Iterator[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="cg-ll-"))  # short: Asterisk's control socket path is limited
    models = root / "models"
    models.mkdir()
    for f in ("gbm.txt", "gbm.calibration.json", "gbm.md"):
        shutil.copyfile(REPO / "models" / f, models / f)
    corpus = root / "corpus"
    shutil.copytree(FIXTURE_CORPUS, corpus)  # feature caches land in the copy
    token = secrets.token_hex(16)
    lab = Lab(root=root / "lab")
    http_port = free_port()
    review = root / "review"
    lab.write(detector="gbm", models_dir=str(models), detector_extra="reload_interval_s = 1.0\n",
              http_port=http_port,
              extra=f'\n[capture]\nenabled = true\ndir = "{review}"\nbonafide_sample = 1.0\nseed = 7\n')
    try:
        lab.start_redis()
        lab.start_asterisk()
        start_plugin(lab, extra_env={"CALLGUARD_HTTP_TOKEN": token})
        yield {"lab": lab, "models": models, "corpus": corpus, "token": token, "review": review,
               "base": f"http://127.0.0.1:{http_port}"}
    finally:
        stop_plugin(lab)
        lab.stop_asterisk()
        lab.stop_redis()
        if not os.environ.get("CALLGUARD_KEEP_LAB"):
            shutil.rmtree(root, ignore_errors=True)


def _api(ctx: dict[str, Any], path: str) -> Any:
    req = urllib.request.Request(ctx["base"] + path, headers={"Authorization": f"Bearer {ctx['token']}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _stream(lab: Lab) -> list[dict[str, Any]]:
    r = redis.Redis.from_url(lab.redis_url, password=lab.redis_password, decode_responses=True)
    try:
        return [json.loads(f["msg"]) for _, f in r.xrange("callguard:verdicts:log")]
    finally:
        r.close()


def _wait(what: str, predicate: Any, timeout: float, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plugin.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio",
                "--window-size=1400,2000", "--no-first-run", "--disable-extensions",
                "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def _label_in_browser(ctx: dict[str, Any], label_of_item: dict[int, str]) -> None:
    """Log in through the form and click each item's label button in the review queue."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        wait = WebDriverWait(driver, WAIT_S)
        driver.get(ctx["base"] + "/dashboard")
        wait.until(ec.url_contains("/dashboard/login"))
        driver.find_element(By.ID, "token").send_keys(ctx["token"])
        driver.find_element(By.ID, "reviewer").send_keys("Ada")
        driver.find_element(By.ID, "login-submit").click()
        wait.until(ec.url_matches(r"/dashboard$"))
        for item_id, label in label_of_item.items():
            row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-item-id="{item_id}"]')))
            row.find_element(By.CSS_SELECTOR, f'button[data-label="{label}"]').click()
            wait.until(lambda d, r=row, lb=label: r.find_element(By.CSS_SELECTOR, ".item-label")
                       .get_attribute("data-current-label") == lb)
        problems = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == [], problems
    finally:
        driver.quit()


def test_captured_calls_are_labelled_in_the_browser_retrained_and_the_new_model_is_hot_reloaded_mid_call(
        loop_lab):
    ctx = loop_lab
    lab: Lab = ctx["lab"]
    media = lab.root / "media"
    audio = {"syn-a": make_synthetic(media / "syn-a.ulaw", voice="en-us"),
             "syn-b": make_synthetic(media / "syn-b.ulaw", voice="en+f3"),
             "bona-a": make_bonafide(media / "bona.ulaw", seconds=12)}
    audio["bona-b"] = audio["bona-a"]

    # 1. four guarded calls with capture on
    calls = {}
    for i, (name, (exten, _)) in enumerate(LABELLED_CALLS.items()):
        dur = audio_seconds(audio[name]) + 0.5
        calls[name] = lab.sipp_call(exten, audio[name], duration_s=dur, index=i, caller_name=name)
    for c in calls.values():
        c.wait(90)
    _wait("the summaries of the four calls",
          lambda: {m.get("caller_name") for m in _stream(lab) if m["type"] == "summary"} >= set(calls), 30)

    # 2. the fifth call starts now and stays up through retraining and promotion
    long_audio = make_bonafide(media / "long.ulaw", seconds=LONG_CALL_S)
    long_call = lab.sipp_call("300", long_audio, duration_s=audio_seconds(long_audio) + 0.5, index=len(calls),
                              caller_name=LONG_CALL)
    try:
        champion = json.loads((ctx["models"] / "gbm.calibration.json").read_text())["version"]

        # 3. label every captured chunk of the four calls in the dashboard, in a real browser
        def captured() -> dict[int, str] | None:
            items = _api(ctx, "/api/review?labelled=all&limit=500")["items"]
            mine = {it["id"]: LABELLED_CALLS[it["caller_name"]][1] for it in items
                    if it.get("caller_name") in LABELLED_CALLS}
            names = {it["caller_name"] for it in items if it.get("caller_name") in LABELLED_CALLS}
            return mine if names == set(LABELLED_CALLS) else None

        label_of_item = _wait("captured chunks of all four calls", captured, 30)
        _label_in_browser(ctx, label_of_item)
        labelled = {it["id"]: it for it in _api(ctx, "/api/review?labelled=1&limit=500")["items"]}
        assert {i: labelled[i]["label"] for i in label_of_item} == label_of_item
        assert {labelled[i]["labelled_by"] for i in label_of_item} == {"Ada"}

        # the long call is being scored by the champion
        _wait("the long call's first chunks", lambda: [m for m in _stream(lab) if m["type"] == "chunk"
                                                       and m.get("caller_name") == LONG_CALL], 30)

        # 4. retrain from the labels: promoted, or refused (then kept and promoted by hand); logged either way
        res = _cli("retrain", "--store", str(ctx["review"]), "--corpus", str(ctx["corpus"]),
                   "--models-dir", str(ctx["models"]), "--rounds", "40", "--keep-refused")
        assert res.returncode == 0, res.stderr[-3000:]
        record = json.loads(res.stdout.strip().splitlines()[-1])
        assert record["event"] in ("promoted", "refused")
        assert record["reviewed"]["train_calls"] >= 1 and record["reviewed"]["held_out_calls"] >= 1
        logged = [json.loads(line) for line in (ctx["models"] / "promotions.jsonl").read_text().splitlines()]
        assert logged[-1]["event"] == record["event"] and logged[-1]["metrics"] == record["metrics"]
        assert {"eval", "held_out"} <= set(record["metrics"])
        if record["event"] == "refused":
            res = _cli("models", "--models-dir", str(ctx["models"]), "promote", record["challenger"], "--reason",
                       "learning-loop test: install the challenger to prove hot reload")
            assert res.returncode == 0, res.stderr
            assert json.loads((ctx["models"] / "promotions.jsonl").read_text().splitlines()[-1])["event"] \
                == "manual_promotion"
        challenger = record["challenger_model"]
        assert challenger != champion

        # the dashboard's models section reports the new version as installed, then as running (hot reload)
        models = _wait("the dashboard to show the new model running",
                       lambda: (m := _api(ctx, "/api/models")) and m.get("current") == record["challenger"]
                       and (m.get("running") or {}).get("version") == challenger and m, 60)
        assert any(v.get("name") == record["challenger"] for v in models["versions"])

        # 5. the running plugin switches to it mid-call
        _wait("a chunk of the long call scored by the new model",
              lambda: [m for m in _stream(lab) if m["type"] == "chunk" and m.get("caller_name") == LONG_CALL
                       and m["detector_version"] == challenger], 60)
    finally:
        long_call.wait(LONG_CALL_S + 30)
    summary = _wait("the long call's summary", lambda: [m for m in _stream(lab) if m["type"] == "summary"
                                                        and m.get("caller_name") == LONG_CALL
                                                        and m["leg"] == "caller"], 30)[0]["summary"]
    chunks = [m for m in _stream(lab) if m["type"] == "chunk" and m.get("caller_name") == LONG_CALL
              and m["leg"] == "caller"]
    versions_seen = [m["detector_version"] for m in chunks]
    switch = versions_seen.index(challenger)
    assert switch >= 1 and set(versions_seen[:switch]) == {champion} and set(versions_seen[switch:]) == {challenger}
    # not a chunk lost or scored twice across the reload
    assert [m["chunk_index"] for m in chunks] == list(range(len(chunks)))
    assert all(m["score"] is not None and m.get("error") is None for m in chunks)
    assert summary["chunks"] == summary["scored"] == len(chunks) and summary["shed"] == 0
    assert not long_call.hung_up_by_pbx
    reloads = [line for line in (lab.log_dir / "callguard.log").read_text(errors="replace").splitlines()
               if "detector reloaded" in line]
    assert len(reloads) == 1 and champion in reloads[0] and challenger in reloads[0], reloads
    print(f"learning loop: {len(label_of_item)} chunks labelled in the browser; retrain {record['event']}; "
          f"long call switched from {champion} to {challenger} at chunk {switch} of {len(chunks)}")
