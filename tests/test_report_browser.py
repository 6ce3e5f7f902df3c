"""The HTML report in headless Debian Chromium: no console errors, the overview (which
checkpoint, heatmap, axis scores, training curves) renders, CI plots are folded, the
leaderboard groups metrics by axis, sorts, filters and hides hyperparameters until asked, and
no script from the data runs.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs them) and
selenium. Skipped when Chromium is missing, unless ``CI`` is set: then it must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_report import SCRIPT, synthetic_run

from t2i_bench.report.build import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WIDTH = 1600
EPOCHS = (1, 2, 3)
ROWS = 1 + 3 * 4 * len(EPOCHS)  # base + algos × learning rates × epochs
#: Replaces window.alert before any page script runs, so a call is recorded, not shown.
ALERT_SPY = (
    "window.__alerts = []; window.alert = function (m) { window.__alerts.push(String(m)); };"
)


def _missing() -> str:
    """Why the browser test cannot run here ('' when it can)."""
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        return "Debian's chromium and chromium-driver are not installed (apt-get install them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    return ""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """``report/index.html`` of a synthetic run with enough configurations for SHAP and
    three epochs per configuration (training curves)."""
    reason = _missing()
    if reason and not os.environ.get("CI"):
        pytest.skip(reason)
    if reason:
        pytest.fail(f"CI is set but the browser test cannot run: {reason}")
    root = tmp_path_factory.mktemp("browser-run")
    write_report(synthetic_run(root, epochs=EPOCHS))
    return root / "report" / "index.html"


@pytest.fixture(scope="module")
def driver(page: Path, tmp_path_factory) -> Iterator[object]:
    """Headless Chromium through Debian's chromedriver; Selenium Manager never runs."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={WIDTH},1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ALERT_SPY})
        browser.get(page.as_uri())
        yield browser
    finally:
        browser.quit()


def _column_values(driver, index: int) -> list[str]:
    script = (
        "return Array.from(document.querySelectorAll('#lb tbody tr'))"
        ".map(r => r.cells[arguments[0]].dataset.v);"
    )
    return driver.execute_script(script, index)


def _header_index(driver, name: str) -> int:
    names = [b.text for b in driver.find_elements("css selector", "#lb thead tr.cols th button")]
    return names.index(name)


def _visible_images(driver, selector: str) -> list[dict]:
    script = (
        "return Array.from(document.querySelectorAll(arguments[0])).map(i => ({src: "
        "i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0, shown: "
        "i.getBoundingClientRect().width > 50}));"
    )
    return driver.execute_script(script, selector)


def test_page_loads_without_console_errors(driver, page: Path) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => i.loading !== 'lazy' && "
        "(!i.complete || i.naturalWidth === 0)).map(i => i.getAttribute('src'));"
    )
    assert broken == []
    lazy = driver.execute_script(  # folded plots load when opened: their files must exist
        "return Array.from(document.images).filter(i => i.loading === 'lazy')"
        ".map(i => i.getAttribute('src'));"
    )
    assert lazy and all((page.parent / src).is_file() for src in lazy)


def test_script_in_a_prompt_is_text_and_never_runs(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    assert driver.execute_script("return window.__alerts;") == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    assert driver.execute_script("return document.body.textContent.includes(arguments[0]);", SCRIPT)
    assert driver.execute_script("return document.title.includes(arguments[0]);", SCRIPT)


def test_clicking_a_header_sorts_the_leaderboard(driver) -> None:
    index = _header_index(driver, "clip_t.alter")
    header = driver.find_elements("css selector", "#lb thead tr.cols th")[index]
    before = _column_values(driver, 0)
    header.find_element("css selector", "button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    values = [float(v) for v in _column_values(driver, index)]
    assert values == sorted(values)
    assert _column_values(driver, 0) != before
    header.find_element("css selector", "button").click()
    assert header.get_attribute("aria-sort") == "descending"
    values = [float(v) for v in _column_values(driver, index)]
    assert values == sorted(values, reverse=True)


def test_filter_hides_rows(driver) -> None:
    box = driver.find_element("id", "lb-filter")
    box.send_keys("lokr")
    visible = [r for r in driver.find_elements("css selector", "#lb tbody tr") if r.is_displayed()]
    lokr = 4 * len(EPOCHS)
    assert len(visible) == lokr and all("lokr" in r.text for r in visible)
    assert driver.find_element("id", "lb-count").text == f"{lokr} of {ROWS} checkpoints"
    box.clear()
    box.send_keys(" ")  # an input event with an empty query shows every row again
    assert driver.find_element("id", "lb-count").text == f"{ROWS} of {ROWS} checkpoints"


def test_overview_opens_the_page_and_renders(driver) -> None:
    sections = driver.execute_script(
        "return Array.from(document.querySelectorAll('main > section')).map(s => s.id);"
    )
    assert sections[:2] in (["warnings", "overview"], ["overview", "summary"])
    answers = driver.find_elements("css selector", "#overview table.choice tbody tr")
    assert [r.find_elements("tag name", "td")[0].text for r in answers] == [
        "fidelity",
        "controllability",
    ]
    figures = _visible_images(driver, "#overview .plots.overview img")
    assert [f["src"] for f in figures] == [
        "plots/overview_heatmap.png",
        "plots/overview_axes.png",
        "plots/tradeoff.png",
    ]
    assert all(f["ok"] and f["shown"] for f in figures), figures


def test_training_curves_render_with_the_best_epoch(driver) -> None:
    curves = _visible_images(driver, "#overview .plots.curves img")
    shown = [c for c in curves if c["shown"]]
    assert [c["src"] for c in shown] == [
        "../analysis/curves_clip_i.train.png",  # fidelity's first metric and prompt type
        "../analysis/curves_clip_t.alter.png",  # controllability's
    ]
    assert all(c["ok"] for c in shown), shown
    folded = driver.find_element("css selector", "#overview details.fold")
    assert folded.get_attribute("open") is None  # the other curves wait in a fold
    assert "ringed: the run's best epoch" in driver.find_element("id", "overview").text


def test_ci_plots_are_folded_and_open_on_click(driver) -> None:
    folds = driver.find_elements("css selector", "#metrics details.metric")
    assert len(folds) == 2 and all(f.get_attribute("open") is None for f in folds)
    image = folds[0].find_element("tag name", "img")
    assert not image.is_displayed()
    folds[0].find_element("tag name", "summary").click()
    assert image.is_displayed()
    driver.execute_script("arguments[0].scrollIntoView();", image)
    assert driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0;", image
    )


def test_leaderboard_groups_metrics_by_axis_and_hides_hyperparameters(driver) -> None:
    groups = [th.text for th in driver.find_elements("css selector", "#lb thead tr.groups th")]
    assert groups[1:3] == ["fidelity", "controllability"]
    buttons = driver.find_elements("css selector", "#lb thead tr.cols th button")
    headers = [b.get_attribute("textContent") for b in buttons]  # hidden ones too
    assert headers[:2] == ["checkpoint", "best for"]
    assert headers[2:5] == ["clip_i.train", "clip_i.trigger", "clip_i.alter"]  # metrics first
    arrows = driver.find_elements("css selector", "#lb thead tr.cols th .dir")
    assert {a.text for a in arrows} == {"↑"}
    lr = driver.find_elements("css selector", "#lb thead tr.cols th")[headers.index("lr")]
    assert not lr.is_displayed()
    driver.find_element("css selector", "label[for='lb-hp']").click()
    assert lr.is_displayed()
    driver.find_element("css selector", "label[for='lb-hp']").click()
    assert not lr.is_displayed()


def test_full_page_screenshot(driver, tmp_path: Path) -> None:
    for selector in ("#lb", "#overview img", "table.images img", "figure.shap img"):
        assert driver.find_elements("css selector", selector), selector
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.set_window_size(WIDTH, min(int(height) + 120, 16000))
    driver.execute_script("window.scrollTo(0, 0);")
    path = tmp_path / "report.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 50_000
    if os.environ.get("T2I_SCREENSHOT_DIR"):
        target = Path(os.environ["T2I_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / "report.png")
