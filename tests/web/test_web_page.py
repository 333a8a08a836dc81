"""The designer's web page in a real browser (Playwright driving Debian's chromium) against the real
in-process stack: search with a catalogue photo and with a sketch, dislike, Verify, Identify, Novelty,
the verification record, a bad file, keyboard use. Screenshots go to var/screenshots/ for people to
look at. The page server runs in-process (uvicorn on the test loop) and talks to the gateway over gRPC."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from designsearch.images import edge_map, encode_jpeg, encode_png, read_image
from designsearch.procs import free_port
from designsearch.v1 import common_pb2, gateway_pb2

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots"
CHROMIUM = os.environ.get("DESIGNSEARCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest_asyncio.fixture(scope="module")
async def web_url(stack):
    """The page server (uvicorn, in-process) for the test stack's gateway."""
    import uvicorn

    from designsearch.web.app import create_app
    from designsearch.web.config import WebSettings

    port = free_port()
    app = create_app(WebSettings(port=port, gateway_address=stack["gateway"].address, max_upload_mb=2))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    await task


@pytest_asyncio.fixture(scope="module")
async def browser():
    """Debian's chromium driven by Playwright (browsers cannot be downloaded here: launched by path)."""
    if not CHROMIUM:
        pytest.skip("chromium not installed (`make system-deps` installs Debian's chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        await b.close()


@pytest_asyncio.fixture
async def page(browser, web_url, indexed):
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = await context.new_page()
    await page.goto(web_url)
    await page.wait_for_function("document.getElementById('catalogue').textContent.includes('designs')")
    yield page
    await context.close()


async def _search(page, path: Path) -> list[str]:
    """Upload ``path`` in the Search tab; the design ids of the result cards, in order."""
    await page.set_input_files("#search-file", str(path))
    await page.wait_for_function("document.getElementById('search-status').textContent.includes('designs')")
    return await page.eval_on_selector_all("#search-results li", "els => els.map(e => e.dataset.designId)")


async def _top(gateway_stub, content: bytes, k: int = 6) -> list[str]:
    r = await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=content), k=k),
                                       timeout=60)
    return [m.design.design_id for m in r.matches]


async def test_search_a_catalogue_photo_shows_its_design_first(page, indexed, gateway_stub):
    catalogue, _, _ = indexed
    ids = await _search(page, catalogue[0].path)
    assert ids[0] == catalogue[0].design_id
    assert ids == await _top(gateway_stub, catalogue[0].path.read_bytes())  # the same answer as the gRPC API
    first = page.locator("#search-results li").first
    assert catalogue[0].model in await first.inner_text()
    assert await first.locator("img").get_attribute("src") != ""  # the matched catalogue crop
    assert await page.locator("#search-overlay rect").count() >= 1  # query regions drawn on the draft
    footer = await page.inner_text("#search-footer")
    assert "embed" in footer and "embedder sha256:" in footer
    assert "domain: photo (detected)" in await page.inner_text("#search-status")
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "web-search.png"), full_page=True)

    async with page.expect_download() as download:  # the verification record
        await page.click("#search-record")
    record = SHOTS / "verification-record.html"
    await (await download.value).save_as(str(record))
    text = record.read_text()
    assert catalogue[0].design_id in text and "Design similarity verification record" in text
    assert "5 designs" in text and "sha256:" in text


async def test_sketch_is_detected_and_searched(page, indexed, gateway_stub, tmp_path):
    catalogue, _, _ = indexed
    for img in catalogue[::5]:  # a line drawing of a catalogue photo whose design the API puts first
        sketch = encode_png(edge_map(read_image(str(img.path)), size=448))
        if (await _top(gateway_stub, sketch))[:1] == [img.design_id]:
            break
    else:
        pytest.fail("no sketch of the small catalogue finds its design first through the API")
    path = tmp_path / "sketch.png"
    path.write_bytes(sketch)
    ids = await _search(page, path)
    assert ids[0] == img.design_id
    assert "domain: sketch (detected)" in await page.inner_text("#search-status")
    await page.screenshot(path=str(SHOTS / "web-sketch.png"), full_page=True)


async def test_dislike_removes_the_result_now_and_from_the_next_query(page, indexed, tmp_path):
    catalogue, queries, _ = indexed
    path = tmp_path / "draft.jpg"  # bytes of its own: the dislike is kept for this image only
    path.write_bytes(encode_jpeg(read_image(str(queries[1].path)), quality=90))
    ids = await _search(page, path)
    disliked = ids[1]
    await page.click(f"#search-results li[data-design-id='{disliked}'] button.dislike")
    await page.wait_for_function(f"!document.querySelector(\"#search-results li[data-design-id='{disliked}']\")")
    assert "removed" in await page.inner_text("#search-status")
    await page.click("#search-run")  # the next query of this user
    await page.wait_for_function("document.getElementById('search-footer').textContent.includes('feedback')")
    again = await page.eval_on_selector_all("#search-results li", "els => els.map(e => e.dataset.designId)")
    assert disliked not in again and again


async def test_verify_identify_and_novelty(page, indexed):
    catalogue, _, _ = indexed
    same, other = catalogue[0].path, next(i for i in catalogue if i.design_id != catalogue[0].design_id).path
    await page.click("#tab-verify")
    await page.set_input_files("#verify-first", str(same))
    await page.set_input_files("#verify-second", str(same))
    await page.click("#verify-run")
    await page.wait_for_selector(".verdict")
    assert await page.inner_text(".verdict") == "Same design"
    assert "threshold" in await page.inner_text("#verify-result")
    await page.set_input_files("#verify-second", str(other))
    await page.click("#verify-run")
    await page.wait_for_function("!document.getElementById('verify-result').textContent.includes('similarity 1.000')")
    await page.screenshot(path=str(SHOTS / "web-verify.png"), full_page=True)

    await page.click("#tab-identify")
    await page.set_input_files("#identify-file", str(same))
    await page.click("#identify-run")
    await page.wait_for_selector("#identify-result tbody tr")
    first_row = await page.inner_text("#identify-result tbody tr")
    assert catalogue[0].brand in first_row and catalogue[0].model in first_row

    await page.click("#tab-novelty")
    await page.set_input_files("#novelty-file", str(same))
    await page.click("#novelty-run")
    await page.wait_for_selector("#novelty-results li")
    assert await page.inner_text("#novelty-result .verdict") == "novelty 0.000"
    assert await page.get_attribute("#novelty-results li", "data-design-id") == catalogue[0].design_id


async def test_a_bad_file_gets_a_clear_message(page, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is not a picture\n" * 20)
    await page.set_input_files("#search-file", str(bad))
    await page.wait_for_selector("#search-error:not([hidden])")
    message = await page.inner_text("#search-error")
    assert "INVALID_ARGUMENT" in message and "image" in message.lower()
    assert await page.locator("#search-results li").count() == 0
    await page.screenshot(path=str(SHOTS / "web-bad-file.png"))


async def test_keyboard_tabs_and_file_picker(page):
    # listen first: Playwright turns file-chooser interception on asynchronously, so a listener added in the
    # same breath as the key press can miss the event
    choosers: list = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    await page.focus("#tab-search")
    await page.keyboard.press("ArrowRight")
    assert await page.get_attribute("#tab-verify", "aria-selected") == "true"
    assert await page.is_visible("#panel-verify") and not await page.is_visible("#panel-search")
    await page.keyboard.press("ArrowLeft")
    assert await page.evaluate("document.activeElement.id") == "tab-search"
    await page.keyboard.press("Tab")  # from the tab list into the panel: the file button comes first
    assert await page.evaluate("document.activeElement.id") == "search-choose"
    await page.keyboard.press("Enter")
    for _ in range(100):
        if choosers:
            break
        await asyncio.sleep(0.1)
    assert choosers and await choosers[0].element.get_attribute("id") == "search-file"


async def test_http_errors_are_json_and_the_server_keeps_serving(web_url, indexed):
    catalogue, _, _ = indexed
    async with httpx.AsyncClient(base_url=web_url, timeout=60) as client:
        r = await client.post("api/search", files={"image": ("big.jpg", b"\xff" * (5 * 2**20), "image/jpeg")})
        assert r.status_code == 413 and r.json()["error"] == "PAYLOAD_TOO_LARGE"
        r = await client.post("api/search", data={"k": "6"}, files={"other": ("x.txt", b"x", "text/plain")})
        assert r.status_code == 400 and "no image" in r.json()["message"]
        r = await client.post("api/search", data={"k": "lots"}, files={"image": ("a.jpg", catalogue[0].path.read_bytes())})
        assert r.status_code == 400 and "k must be a whole number" in r.json()["message"]
        r = await client.post("api/dislike", content=b"{not json")
        assert r.status_code == 400
        r = await client.post("api/search", files={"image": ("a.jpg", catalogue[0].path.read_bytes())},
                              data={"year_min": "2030", "year_max": "2031"})
        assert r.status_code == 200 and r.json()["matches"] == []  # filters reach the gateway
        assert (await client.get("healthz")).json()["status"] == "ok"
        assert "<script src=\"static/app.js\"" in (await client.get("")).text  # everything served locally
        assert (await client.get("static/app.js")).status_code == 200
