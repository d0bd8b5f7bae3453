#!/usr/bin/env python3
"""Load the built documentation site in a real browser and check it the way a reader would meet it.

Serves SITE_DIR on 127.0.0.1 (a random port), drives Debian's headless Chromium through chromedriver (selenium) and:
- follows every internal link from the home page: each page and file must be served without an error, each
  `#fragment` must exist on its target page, and no page may log a console error;
- types "tensor parallel" into the search box and expects results;
- saves screenshots of the home page, the CLI reference and the recipe format page under SITE_DIR/_screenshots/.

Nothing leaves the machine: Chromium resolves no host name but 127.0.0.1, so a page that needs the network logs an
error and fails the check. Exit 0 when everything passed, 1 otherwise (each problem on one line).

Usage: check_site.py SITE_DIR [--chromium /usr/bin/chromium] [--chromedriver /usr/bin/chromedriver]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

SEARCH_QUERY = "tensor parallel"
SCREENSHOTS = {"home": "", "cli-reference": "reference/cli/", "recipe-format": "recipes/"}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


# ---- a local server that remembers what it answered -------------------------------------------------------------
class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    served: list[tuple[str, int]]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.served.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(site: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    served: list[tuple[str, int]] = []
    handler = type("Handler", (RecordingHandler,), {"served": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()


# ---- the browser ---------------------------------------------------------------------------------------------------
@contextmanager
def chromium(binary: str, driver_path: str) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sparkrun-docs-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def load(driver: Any, url: str) -> None:
    driver.get(url)
    deadline = time.monotonic() + 15
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not finish loading")
        time.sleep(0.05)


# ---- the crawl -----------------------------------------------------------------------------------------------------
@dataclass
class Crawl:
    base: str
    pages: dict[str, set[str]] = field(default_factory=dict)  # page path -> element ids on it
    fragments: list[tuple[str, str, str]] = field(default_factory=list)  # (source page, target page, fragment)
    files: dict[str, str] = field(default_factory=dict)  # non-page target -> a page linking it
    problems: list[str] = field(default_factory=list)

    def is_page(self, path: str) -> bool:
        return path.endswith("/") or path.endswith(".html")


def visit(driver: Any, crawl: Crawl, path: str) -> list[str]:
    """Load one page; remember its ids; return the internal links on it."""
    load(driver, crawl.base + path.lstrip("/"))
    for message in console_errors(driver):
        crawl.problems.append(f"{path}: console error: {message}")
    crawl.pages[path] = set(driver.execute_script("return Array.from(document.querySelectorAll('[id]'), e => e.id)"))
    hrefs: list[str] = driver.execute_script("return Array.from(document.querySelectorAll('a[href]'), a => a.href)")
    internal = []
    for href in hrefs:
        url, fragment = urldefrag(href)
        if not url.startswith(crawl.base):
            continue
        target = urlsplit(url).path
        internal.append(target)
        if fragment:
            crawl.fragments.append((path, target, fragment))
    return internal


def crawl_site(driver: Any, base: str) -> Crawl:
    crawl = Crawl(base)
    queue, seen = ["/"], {"/"}
    while queue:
        path = queue.pop(0)
        for target in visit(driver, crawl, path):
            if target in seen:
                continue
            seen.add(target)
            if crawl.is_page(target):
                queue.append(target)
            else:
                crawl.files[target] = path
    for target, source in crawl.files.items():
        try:
            with urllib.request.urlopen(crawl.base + target.lstrip("/"), timeout=10) as response:
                response.read()
        except urllib.error.URLError as exc:
            crawl.problems.append(f"{source}: link to {target}: {exc}")
    for source, target, fragment in crawl.fragments:
        ids = crawl.pages.get(target)
        if ids is not None and fragment not in ids:
            crawl.problems.append(f"{source}: link to {target}#{fragment}: no such anchor")
    return crawl


# ---- search and screenshots ----------------------------------------------------------------------------------------
def check_search(driver: Any, base: str) -> tuple[list[str], list[str]]:
    """Type the query into the search box; return (result titles, problems)."""
    from selenium.webdriver.common.by import By

    load(driver, base)
    box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")  # in the header at desktop width
    box.click()
    box.send_keys(SEARCH_QUERY)
    deadline = time.monotonic() + 15
    titles: list[str] = []
    while time.monotonic() < deadline and not titles:
        time.sleep(0.2)
        items = driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item h1, .md-search-result__item h2")
        titles = [t.text for t in items if t.text.strip()]
    problems = [] if titles else [f"search for {SEARCH_QUERY!r} found nothing within 15 s"]
    problems += [f"search page: console error: {m}" for m in console_errors(driver)]
    return titles, problems


def screenshots(driver: Any, base: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, path in SCREENSHOTS.items():
        load(driver, base + path)
        target = out / f"{name}.png"
        driver.save_screenshot(str(target))
        saved.append(target)
    return saved


def http_errors(served: list[tuple[str, int]]) -> list[str]:
    return sorted({f"server answered {code} for {path}" for path, code in served if code >= 400})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args(argv)
    site = args.site.resolve()
    if not (site / "index.html").exists():
        print(f"check_site: {site}/index.html not found; build the site first (make docs)", file=sys.stderr)
        return 1
    for tool in (args.chromium, args.chromedriver):
        if not Path(tool).exists():
            print(f"check_site: {tool} not found; install Debian's chromium and chromium-driver", file=sys.stderr)
            return 1
    started = time.monotonic()
    with serve(site) as (base, served), chromium(args.chromium, args.chromedriver) as driver:
        crawl = crawl_site(driver, base)
        titles, search_problems = check_search(driver, base)
        shots = screenshots(driver, base, site / "_screenshots")
    problems = crawl.problems + search_problems + http_errors(served)
    print(
        f"check_site: {len(crawl.pages)} pages, {len(crawl.files)} files, {len(crawl.fragments)} anchored links, "
        f"{len(served)} requests, search {SEARCH_QUERY!r}: {len(titles)} results "
        f"({'; '.join(titles[:3])}), {time.monotonic() - started:.1f} s"
    )
    for shot in shots:
        print(f"check_site: screenshot {shot}")
    for problem in problems:
        print(f"check_site: FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
