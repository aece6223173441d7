"""derive serve in a real browser: Debian's headless Chromium driven by Selenium, against a real server
(`derive serve --course`, waitress, worker processes, SQLite), as a student and a teacher use it.

Skipped outside CI when chromium, chromedriver or selenium is missing; under CI (.ci/run installs them)
it fails instead. DERIVE_SCREENSHOTS=DIR keeps a screenshot of every page in DIR.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "browser-test-token"


def _need(ok: bool, what: str) -> None:
    if not ok:
        if IN_CI:
            pytest.fail(f"{what} is missing (.ci/run installs it)")
        pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course")
    (folder / "course.toml").write_text(f'title = "BPTT homework"\nsteps = 3\nshow_solutions = true\n'
                                        f'database = "class.sqlite"\ntoken = "{TOKEN}"\nport = 0\nworkers = 1\n'
                                        # a generous deadline: the grader's is wall time, and a shared CI
                                        # machine at load 12 once took more than the default 5 s
                                        'timeout = 60\n'
                                        '[[model]]\nname = "linear-rnn"\n[[model]]\nname = "elman"\n'
                                        'questions = ["delta_a_2", "W"]\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "derive", "serve", "--course", str(folder / "course.toml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=folder)
    url = None
    for line in proc.stdout:
        if m := re.search(r"student pages: (http://\S+)", line):
            url = m[1]
            break
    if url is None:
        proc.kill()
        pytest.fail("derive serve did not start: " + proc.stderr.read()[-2000:])
    yield url, folder
    proc.terminate()  # SIGTERM: derive serve shuts its workers down too
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    _need(importlib_find("selenium"), "selenium (pip install '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    _need(chromium is not None, "chromium (apt-get install chromium)")
    _need(shutil.which("chromedriver") is not None, "chromedriver (apt-get install chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,1000",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def importlib_find(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def shot(driver, name: str) -> None:
    folder = os.environ.get("DERIVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1000, max(600, min(height + 40, 2400)))
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))
        driver.set_window_size(1000, 1000)


def wait_for(predicate, timeout: float = 30.0, what: str = "the page"):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:  # the page may be replaced between finding an element and reading it (a form just submitted)
            value = predicate()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not appear within {timeout} s")


def test_student_and_teacher_in_a_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url = server[0]
    d = browser
    # the index: every question a link, typeset by KaTeX (no network: the page loads only its own files)
    d.get(url)
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#model-linear-rnn .katex"), what="typeset questions")
    links = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "ul.questions a")]
    assert links[-2:] == [url + "q/elman/delta_a_2", url + "q/elman/W"]
    shot(d, "index")
    d.get(url + "q/linear-rnn/W_rec")
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, ".equations .katex"), what="the model's equations")
    d.find_element(By.ID, "student").send_keys("student-7")
    box = d.find_element(By.ID, "answer")
    preview = d.find_element(By.ID, "preview")

    # a wrong answer, half typed: the parse error with its position; then whole: how it reads
    box.send_keys("2*(s_3 - ")
    wait_for(lambda: preview.get_attribute("data-state") == "error", what="the preview's error")
    assert "position 10" in preview.text and "^" in preview.text
    shot(d, "preview-error")
    box.send_keys("y)*s_2")
    wait_for(lambda: preview.get_attribute("data-state") == "ok", what="the preview")
    assert "reads as" in preview.text and preview.find_elements(By.CSS_SELECTOR, ".katex")
    shot(d, "preview")
    d.find_element(By.ID, "submit").click()
    verdict = wait_for(lambda: d.find_elements(By.ID, "verdict"), what="the verdict")[0]
    assert verdict.get_attribute("data-verdict") == "incorrect"
    assert "only the term of the last step" in verdict.text  # the diagnosis in words, not its key 'only last':
    assert "Likely mistake: Only the last step's term is kept" in verdict.text and "only last" not in verdict.text
    shot(d, "verdict-incorrect")

    # fixed: accepted
    box = d.find_element(By.ID, "answer")
    box.clear()
    box.send_keys("2*(s_3 - y)*(s_2 + W_rec*s_1 + W_rec**2*s_0)")
    d.find_element(By.ID, "submit").click()
    wait_for(lambda: d.find_element(By.ID, "verdict").get_attribute("data-verdict") == "correct", what="correct")
    assert "Solution" in d.find_element(By.ID, "verdict").text
    shot(d, "verdict-correct")

    # the teacher page: refused without the token and with a wrong one, open with it
    d.get(url + "teacher")
    assert d.find_elements(By.ID, "login-form") and "student-7" not in d.page_source
    shot(d, "teacher-login")
    d.find_element(By.ID, "token").send_keys("not-the-token")
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    assert "not the teacher" in wait_for(lambda: d.find_elements(By.ID, "login-error"))[0].text
    d.find_element(By.ID, "token").send_keys(TOKEN)
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    table = wait_for(lambda: d.find_elements(By.ID, "submissions"), what="the submissions table")[0]
    assert table.text.count("student-7") == 2

    # upload a CSV, read the report, download it
    answers = tmp_path / "class.csv"
    answers.write_text("id,wrt,answer\nann,W_rec,2*(s_3 - y)*s_2\nbob,W_x,\"2*(s_3 - y)*(x_3 + W_rec*x_2 + "
                       "W_rec**2*x_1)\"\ncat,delta_s_2,2*(s_3 - \n")
    d.find_element(By.ID, "upload-file").send_keys(str(answers))
    d.find_element(By.ID, "upload-submit").click()
    report = wait_for(lambda: d.find_elements(By.ID, "batch-report"), what="the batch report")[0]
    assert "3 rows graded" in report.text
    shot(d, "teacher")
    href = d.find_element(By.ID, "batch-csv").get_attribute("href")
    csv_text = d.execute_async_script("fetch(arguments[0]).then(r => r.text()).then(arguments[1])", href)
    rows = [r.split(",") for r in csv_text.splitlines()]
    assert rows[0][:5] == ["row", "id", "wrt", "steps", "verdict"]
    assert [(r[1], r[4]) for r in rows[1:]] == [("ann", "incorrect"), ("bob", "correct"), ("cat", "unreadable")]
    everything = d.execute_async_script("fetch(arguments[0]).then(r => r.text()).then(arguments[1])",
                                        url + "teacher/submissions.csv")
    assert everything.count("\n") == 1 + 2 + 3
