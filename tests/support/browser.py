"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven by the Python ``playwright`` package
on the reactor's asyncio loop; never a browser download.

Playwright's calls are asyncio coroutines: a Twisted test awaits each through the project's
bridge, ``await aio(page.goto(url))`` (:func:`beachmanager._aio.as_deferred`).

* :func:`require` fails the test with ``scripts/check-system browser``'s sentence when
  Chromium or Playwright is missing;
* :func:`launch` opens a page whose requests and errors are recorded (``Browser.requests``,
  ``Browser.errors``), with optional extra headers on every request (a bearer token).
"""

from __future__ import annotations

import pathlib
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pytest

from beachmanager._aio import as_deferred as aio

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run")

__all__ = ["Browser", "aio", "launch", "require"]


def require() -> None:
    """Fail (never skip) with exactly what is missing."""
    run = subprocess.run([str(ROOT / "scripts" / "check-system"), "browser"], capture_output=True,
                         text=True, timeout=60)
    if run.returncode != 0:
        pytest.fail(run.stderr.strip() or "scripts/check-system browser failed", pytrace=False)


@dataclass
class Browser:
    playwright: Any
    browser: Any
    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def close(self) -> None:
        try:
            await self.browser.close()
        finally:
            await self.playwright.stop()


async def launch(headers: dict[str, str] | None = None, width: int = 1280,
                 height: int = 900) -> Browser:
    """An asyncio coroutine: ``b = await aio(launch(...))``; ``await aio(b.close())``."""
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    try:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(ARGS))
        context = await browser.new_context(viewport={"width": width, "height": height},
                                            extra_http_headers=headers or {})
        page = await context.new_page()
    except BaseException:
        await pw.stop()
        raise
    out = Browser(pw, browser, page)
    page.on("request", lambda r: out.requests.append(r.url))
    page.on("pageerror", lambda e: out.errors.append(f"page error: {e}"))
    page.on("console", lambda m: out.errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    return out


#: Every element with text of its own: its colour against the nearest opaque background, as
#: a WCAG contrast ratio; returns those under 4.5 (3 for large text).
CONTRAST_JS = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const st = getComputedStyle(el);
    if (st.visibility === "hidden" || el.closest("[hidden]")) continue;
    const fg = lum(rgb(st.color).slice(0, 3)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    checked++;
    if (ratio < need) low.push(el.tagName + "." + el.className + " '" + el.textContent.trim().slice(0, 30) + "' " + ratio.toFixed(2));
  }
  return {checked, low};
}"""
