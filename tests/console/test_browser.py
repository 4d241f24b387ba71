"""Journeys through the console in a real headless Chromium, with a screenshot of every page.

The journeys the operators take most: sign in, look around every page in
both languages, find an expert in the directory, approve an elimination
batch, award the week's best answers, edit and validate a playbook
configuration, erase a member. Pages that change data run on a fresh
community of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from qunyun.console.web import NAV
from tests.console.browser import serve, shot
from tests.console.browser import sign_in as browser_sign_in
from tests.console.conftest import PASSWORD, Site


@pytest.fixture
def browser(chromium: Any) -> Any:
    return chromium


@pytest.fixture(scope="session")
def live(demo_site: Site) -> Iterator[str]:
    with serve(demo_site.app()) as url:
        yield url


def sign_in(browser: Any, url: str, username: str, *, lang: str = "zh-CN") -> Any:
    return browser_sign_in(browser, url, username, PASSWORD, lang=lang)


def test_sign_in_and_every_page_in_both_languages(browser: Any, live: str, demo_site: Site) -> None:
    for lang in ("zh-CN", "en"):
        page = sign_in(browser, live, "adam", lang=lang)
        assert page.url.endswith("/c/demo/overview"), page.url
        # the community's locale (zh-CN) is the default, whatever the browser asks for …
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        # … and the operator's choice is remembered from then on
        page.goto(f"{live}/lang/{lang}")
        page.goto(f"{live}/c/demo/overview")
        assert page.locator("html").get_attribute("lang") == lang
        for area, _role in NAV:
            response = page.goto(f"{live}/c/demo/{area}")
            assert response is not None and response.status == 200, f"{area}: {response and response.status}"
            page.wait_for_load_state("networkidle")
            nav = page.locator("nav.side a.current")
            assert nav.count() == 1, f"{area}: the navigation does not mark the page"
            if demo_site.backend == "sqlite":
                shot(page, f"{area}-{lang}")
        assert page.errors == [], page.errors  # type: ignore[attr-defined]
        page.context.close()


def test_language_switch_keeps_the_page(browser: Any, live: str) -> None:
    page = sign_in(browser, live, "vera", lang="zh-CN")
    page.goto(f"{live}/c/demo/groups")
    title_zh = page.title()
    page.click("[data-testid=lang-switch]")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/c/demo/groups")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.title() != title_zh
    page.context.close()


def test_wrong_password_says_so(browser: Any, live: str) -> None:
    context = browser.new_context(locale="en")
    page = context.new_page()
    page.goto(f"{live}/login")
    page.fill("#username", "vera")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "error=invalid" in page.url
    assert page.get_by_role("alert").inner_text().strip()
    context.close()
