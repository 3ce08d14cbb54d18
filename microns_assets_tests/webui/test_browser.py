"""Headless Chromium shows our assets on the web UI's global lineage page; saves a screenshot.

Driven by Playwright for Python, launched on Debian's `chromium` (no browser download). The
screenshot goes to the test's tmp dir and, when `MICRONS_TEST_ARTIFACTS` is set, is copied there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from microns_assets_tests.conftest import wait_until
from microns_assets_tests.webui import expected
from microns_assets_tests.webui.server import graphql

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1920, "height": 1400}  # the whole expanded graph fits at full node size
ASSET_NAME = '[class*="AssetNode_assetName"]'  # the name box of an asset node in the graph
TIMEOUT_MS = 30_000


def chromium() -> str:
    """Debian's chromium, or a test failure that says how to install it."""
    path = shutil.which("chromium")
    if path is None:
        raise AssertionError(
            "Chromium not found: the web UI test needs Debian's `chromium` package. Install it "
            "with `sudo apt-get install -y chromium` (.ci/run does this on CI)."
        )
    return path


def shown_as(name: str, text: str) -> bool:
    """Whether a node label shows `name`, whole or middle-truncated ("cell_…_corrections")."""
    if "…" not in text:
        return text == name
    head, tail = text.split("…", 1)
    return name.startswith(head) and name.endswith(tail) and len(head) + len(tail) < len(name)


def skip_community_dialog(page: Page, url: str) -> None:
    """Dismiss the first-visit "Join the Dagster community" dialog with its Skip button."""
    dialog = page.get_by_text("Join the Dagster community")
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Skip").click()
    expect(dialog).to_be_hidden()
    # the server records it: the page's mutation may still be in flight when the dialog hides
    assert wait_until(lambda: graphql(url, "{ shouldShowNux }")["shouldShowNux"] is False, 30)
    print("\ndismissed the 'Join the Dagster community' dialog (Skip)")


def save_screenshot(page: Page, tmp_path: Path) -> Path:
    path = tmp_path / "lineage.png"
    page.screenshot(path=path, full_page=True)
    artifacts = os.environ.get("MICRONS_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        path = Path(shutil.copy(path, Path(artifacts) / path.name))
    print(f"\nscreenshot of the lineage page: {path}")
    return path


def test_lineage_page_renders_our_assets(webserver, tmp_path):
    names = [key.rsplit("/", 1)[-1] for key in expected.KEYS]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        try:
            with page.expect_response(lambda r: r.url.endswith("/graphql?op=ShouldShowNux")) as nux:
                page.goto(f"{webserver.url}/asset-groups")
            if nux.value.json()["data"]["shouldShowNux"]:  # a fresh instance: first visit
                skip_community_dialog(page, webserver.url)
            expect(page.get_by_text("Global asset lineage")).to_be_visible()
            page.locator("[data-svg-viewport] svg foreignObject").first.wait_for()
            if page.locator(ASSET_NAME).count() < len(names):  # groups collapsed, the default
                page.keyboard.press("Alt+e")  # "Expand all groups": one node per asset
            expect(page.locator(ASSET_NAME)).to_have_count(len(names))
            expect(page.get_by_text("Loading...")).to_have_count(0)  # node status filled in
            rendered = page.locator(ASSET_NAME).all_inner_texts()
            missing = [n for n in names if not any(shown_as(n, t) for t in rendered)]
            assert not missing, f"not on the lineage page: {missing}; rendered: {rendered}"
            # every partitioned node shows its partitions of version 1300 fully materialized
            filled = page.get_by_text("100% filled", exact=True)
            expect(filled).to_have_count(len(expected.BACKFILLED))
        finally:
            shot = save_screenshot(page, tmp_path)
            browser.close()
    assert shot.stat().st_size > 10_000
