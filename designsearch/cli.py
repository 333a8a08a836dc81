"""``designsearch`` command line: run the stack, ingest a catalogue, query it, run the demo, train, evaluate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import html
import base64
import os
import signal
import time
from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from designsearch.catalogue_data import demo_split, read_labels
from designsearch.settings import VAR_DIR, default_data_dir

app = typer.Typer(help="designsearch: find existing designs similar to a draft image.", no_args_is_help=True)
console = Console()

DEFAULT_GATEWAY = os.environ.get("DESIGNSEARCH_GATEWAY", "127.0.0.1:50050")
DEFAULT_VAR = VAR_DIR


@app.command("export-embedder")
def export_embedder(out: Path = typer.Option(None, help="ONNX file to write (default var/models/imagenet-lite0.onnx).")) -> None:
    """Export the ImageNet EfficientNet-Lite0 embedder to ONNX (needs torch; a setup step)."""
    from designsearch.services.embedder.config import IMAGENET_MODEL
    from designsearch.training.embedder.export import export_imagenet

    out = out or IMAGENET_MODEL
    if out.exists():
        console.print(f"{out} exists")
        return
    console.print(f"wrote {out} ({export_imagenet(out)})")


@contextmanager
def _client(gateway: str, api_key: str | None) -> Iterator:
    """A client of the gateway for one command: a gRPC error inside the block is printed (code,
    message, reason) and the command exits with status 1."""
    from designsearch.client import DesignSearchClient, error_details

    with DesignSearchClient(gateway, api_key) as client:
        try:
            yield client
        except grpc.RpcError as err:
            console.print(f"[red]{error_details(err)}[/]")
            raise typer.Exit(1) from None


@app.command()
def up(var_dir: Path = typer.Option(DEFAULT_VAR, help="Folder for Redis data, index, catalogue and logs."),
       gateway_port: int = typer.Option(50050, help="Gateway port."),
       web_port: int = typer.Option(8080, help="Port of the web page (0 = no web page)."),
       replicas: str = typer.Option("", help="Processes per service, e.g. 'embedder=2,segmenter=2,gateway=2' (more "
                                             "cores used; calls spread round-robin and retried on another replica; "
                                             "replica i > 1 on a free port).")) -> None:
    """Start Redis, the four services and the web page locally; wait until all are SERVING; restart any
    that crashes (with back-off, reported); stop them on Ctrl-C or SIGTERM."""
    from designsearch.procs import Stack

    try:
        counts = {k.strip(): int(v) for k, v in (item.split("=") for item in replicas.split(",") if item.strip())}
        stack = Stack(var_dir, ports={"gateway": gateway_port, "segmenter": 50051, "embedder": 50052, "search": 50053,
                                      "web": web_port}, web=web_port != 0, replicas=counts)
    except ValueError as e:
        console.print(f"[red]--replicas {replicas!r}: {e}[/] (expected e.g. embedder=2,segmenter=2)")
        raise typer.Exit(2) from None
    with console.status("starting redis, segmenter, embedder, search, gateway, web page ..."):
        stack.start()
    console.print(f"[green]all services SERVING[/]: gateway on {stack.gateway_address}, logs in {var_dir / 'logs'}; Ctrl-C stops")
    _serve_until_stopped(stack)


@app.command()
def web(gateway: str = typer.Option(DEFAULT_GATEWAY, help="Gateway address."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 to share it on the network)."),
        port: int = typer.Option(8080, help="HTTP port."),
        api_key: str = typer.Option("", envvar="DESIGNSEARCH_API_KEY",
                                    help="Key sent to the gateway for browsers that give none.")) -> None:
    """Serve the designer's web page (search, Verify, Identify, Novelty, dislike, verification record)
    for a running gateway; Ctrl-C stops."""
    from designsearch.web.app import serve
    from designsearch.web.config import WebSettings

    console.print(f"web page on http://{host}:{port}/ (gateway {gateway})")
    serve(WebSettings(host=host, port=port, gateway_address=gateway, api_key=api_key))


def _serve_until_stopped(stack) -> None:
    """Supervise ``stack`` (restart crashed services, reported) until Ctrl-C or SIGTERM, then stop it."""
    if "web" in stack.ports:
        console.print(f"[green]web page[/]: {stack.web_url}")
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping:  # supervise: a crashed service is restarted with back-off, and we say so
            stack.supervise(on_event=lambda text: console.print(f"[yellow]{text}[/]"))
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping ..."):
            stack.stop()
        console.print("stopped")


def _ingest(address: str, images, api_key: str | None, move: bool = False) -> None:
    from designsearch.client import DesignSearchClient

    with DesignSearchClient(address, api_key) as client, Progress(
        TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("ingest", total=len(images))
        response = client.index(images, on_item=lambda: progress.advance(task), move=move)
    console.print(f"added {response.added}, already indexed {response.duplicates}, moved {response.moved}, "
                  f"failed {response.failed}")
    for r in response.results:
        if r.error:
            console.print(f"  [red]{images[r.index].path.name}[/]: {r.error}")


@app.command()
def ingest(directory: Path = typer.Argument(..., help="Folder the CSV's `file` column is relative to."),
           labels: Path = typer.Option(..., "--labels", help="CSV: file,make|brand,model,year[,design_id,class_id]."),
           classes: str = typer.Option("", help="Only these class ids, e.g. 79-98 (demo data)."),
           gateway: str = typer.Option(DEFAULT_GATEWAY, help="Gateway address."),
           api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY"),
           move: bool = typer.Option(False, help="Move images already catalogued under another design to the "
                                                 "CSV's design (a correction); without it they fail with ALREADY_EXISTS.")) -> None:
    """Ingest labelled images (idempotent: images already indexed under the same design are skipped)."""
    images = read_labels(labels, directory)
    if classes:
        lo, _, hi = classes.partition("-")
        images = [i for i in images if int(lo) <= i.class_id <= int(hi or lo)]
    _ingest(gateway, images, api_key, move)


@app.command()
def reindex(directory: Path = typer.Argument(..., help="Folder the CSV's `file` column is relative to."),
            labels: Path = typer.Option(..., "--labels", help="The catalogue's source images (as for ingest)."),
            embedder: str = typer.Option(..., help="Address of the embedder serving the NEW model."),
            classes: str = typer.Option("", help="Only these class ids, e.g. 79-98."),
            drop_old: bool = typer.Option(False, help="Drop the previously live collection after the switch.")) -> None:
    """Model upgrade without downtime: index the catalogue with a new embedder into a new collection
    while the old one serves, switch the alias, optionally drop the old one. Resumable.

    Segmenter, search and catalogue addresses come from the gateway's settings (DESIGNSEARCH_GATEWAY_*).
    Gateways follow the alias; give them the new embedder in DESIGNSEARCH_GATEWAY_UPGRADE_EMBEDDER_ADDRESSES.
    """
    import asyncio

    from designsearch.gateway.config import GatewaySettings
    from designsearch.gateway.core import IndexItem, build_core

    settings = GatewaySettings()
    images = read_labels(labels, directory)
    if classes:
        lo, _, hi = classes.partition("-")
        images = [i for i in images if int(lo) <= i.class_id <= int(hi or lo)]

    async def run() -> dict:
        core = build_core(settings, [embedder])
        (version, _), = await core.backends.model_infos()
        items = (IndexItem(i.design_id, i.brand, i.model, i.year, i.path.read_bytes(), i.path.name) for i in images)
        with Progress(TextColumn(f"reindexing with {version}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("reindex", total=len(images))
            try:
                return await core.reindex(items, version, on_item=lambda _: progress.advance(task), drop_old=drop_old)
            finally:
                await core.close()

    summary = asyncio.run(run())
    console.print(f"added {summary['added']}, already done {summary['duplicates']}, moved {summary['moved']}, "
                  f"failed {summary['failed']}; "
                  f"alias '{settings.collection_prefix}' → {summary['collection']} (was {summary['previous']})")


@app.command("designs")
def designs(action: str = typer.Argument("list", help="list | get | update | delete"),
            design_id: str = typer.Argument("", help="The design (update, delete)."),
            brand: str = typer.Option(None), model: str = typer.Option(None), year: int = typer.Option(None),
            gateway: str = typer.Option(DEFAULT_GATEWAY), api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY")) -> None:
    """Catalogue management: list designs (all pages), get one, update its labels, delete it."""
    with _client(gateway, api_key) as client:
        if action == "list":
            token = None
            while token != "":
                page = client.list_designs(brands=[brand] if brand else [], page_token=token or "")
                for d in page.designs:
                    console.print(f"{d.design.design_id}: {d.design.brand} {d.design.model} {d.design.year} "
                                  f"({d.images} images)")
                token = page.next_page_token
        elif action == "get":
            d = client.get_design(design_id).design
            console.print(f"{d.design.design_id}: {d.design.brand} {d.design.model} {d.design.year} ({d.images} images)")
        elif action == "update":
            changes = {k: v for k, v in (("brand", brand), ("model", model), ("year", year)) if v is not None}
            r = client.update_design(design_id, **changes)
            console.print(f"updated {r.design.design.design_id}; {r.points_updated} points re-labelled")
        elif action == "delete":
            r = client.delete_design(design_id)
            console.print(f"deleted {r.images_deleted} images, {r.points_deleted} points")
        else:
            raise typer.BadParameter(f"unknown action {action!r}: list, get, update or delete")


@app.command("export-feedback")
def export_feedback(out: Path = typer.Argument(..., help="JSON Lines file to write.")) -> None:
    """Write the designers' feedback as training pairs, one JSON object per line: the query image
    (sha256), the design it is NOT similar to, who said so, the model version that answered, when.
    Reads the gateway's catalogue (DESIGNSEARCH_GATEWAY_CATALOGUE_URL)."""
    import json

    from designsearch.gateway.catalogue import Catalogue
    from designsearch.gateway.config import GatewaySettings

    catalogue = Catalogue(GatewaySettings().catalogue_url)
    try:
        rows = catalogue.feedback()
    finally:
        catalogue.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for r in rows:
            f.write(json.dumps({"query_image_sha256": r["query_id"], "negative_design_id": r["design_id"], "label": 0,
                                "user_id": r["user_id"], "model_version": r["model_version"],
                                "created_at": r["created_at"]}) + "\n")
    console.print(f"{len(rows)} feedback pairs written to {out}")


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _forward(module: str, ctx: typer.Context) -> None:
    """Run ``module.main(argv)`` with the command's remaining arguments (``--help`` shows them)."""
    import importlib

    importlib.import_module(module).main(list(ctx.args))


@app.command("train-segmenter", context_settings=_PASS_THROUGH)
def train_segmenter(ctx: typer.Context) -> None:
    """Train the wheel segmenter on Car-Parts-Segmentation and export ONNX (options: --help)."""
    _forward("designsearch.training.segmenter.train", ctx)


@app.command("eval-segmenter", context_settings=_PASS_THROUGH)
def eval_segmenter(ctx: typer.Context) -> None:
    """Mask IoU, instance precision/recall and latency of the learned and classical segmenters (options: --help)."""
    _forward("designsearch.training.segmenter.evaluate", ctx)


@app.command("train-embedder", context_settings=_PASS_THROUGH)
def train_embedder(ctx: typer.Context) -> None:
    """Train the metric-learning embedder on wheel crops of Stanford Cars and export ONNX (options: --help)."""
    _forward("designsearch.training.embedder.train", ctx)


@app.command("ship-model", context_settings=_PASS_THROUGH)
def ship_model(ctx: typer.Context) -> None:
    """Ship a trained float32 model from runs/: copy to models/, INT8, Verify calibration, card log (options: --help)."""
    _forward("designsearch.training.ship", ctx)


@app.command("render-wheels", context_settings=_PASS_THROUGH)
def render_wheels(ctx: typer.Context) -> None:
    """Render parametric and real rim designs: studio shots, masks, line drawings, on-car pictures (options: --help)."""
    _forward("designsearch.training.wheelgen.engine", ctx)


@app.command("eval-embedder", context_settings=_PASS_THROUGH)
def eval_embedder(ctx: typer.Context) -> None:
    """Recall@K and mAP@R of the ImageNet and trained embedders: crops, whole cars, sketches (options: --help)."""
    _forward("designsearch.training.embedder.evaluate", ctx)


def _matches_table(title: str, response) -> Table:
    table = Table(title=title)
    for col in ["#", "score", "brand", "model", "year", "design id", "query box"]:
        table.add_column(col)
    for i, m in enumerate(response.matches, 1):
        b = m.query_box
        table.add_row(str(i), f"{m.score:.3f}", m.design.brand, m.design.model, str(m.design.year), m.design.design_id,
                      f"({b.x1},{b.y1},{b.x2},{b.y2})")
    return table


def _timings(response) -> str:
    return "  ".join(f"{k} {v:.1f} ms" for k, v in sorted(response.timings_ms.items()))


@app.command()
def query(image: Path = typer.Argument(..., exists=True, dir_okay=False), k: int = typer.Option(6),
          brand: list[str] = typer.Option([], help="Only these brands."), year_min: int = typer.Option(None),
          year_max: int = typer.Option(None), domain: str = typer.Option("auto", help="auto | photo | sketch"),
          gateway: str = typer.Option(DEFAULT_GATEWAY), api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY")) -> None:
    """Print the designs most similar to IMAGE, with per-stage timings."""
    with _client(gateway, api_key) as client:
        r = client.find_similar(image.read_bytes(), k, brands=brand, year_min=year_min, year_max=year_max, domain=domain)
    console.print(_matches_table(f"{image.name}: {len(r.query_crops)} crop(s), cache {'hit' if r.cache_hit else 'miss'}", r))
    console.print(_timings(r))
    console.print(f"query id (for `designsearch dislike`): {r.query_id}")


@app.command()
def identify(image: Path = typer.Argument(..., exists=True, dir_okay=False), neighbours: int = typer.Option(0),
             gateway: str = typer.Option(DEFAULT_GATEWAY), api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY")) -> None:
    """Brand, model and year of IMAGE: top-5 candidates with vote shares."""
    with _client(gateway, api_key) as client:
        r = client.identify(image.read_bytes(), neighbours)
    for c in r.candidates:
        console.print(f"{c.vote_share:6.1%}  {c.brand} {c.model} {c.year}  (best {c.best_score:.3f}; {', '.join(c.design_ids[:3])})")


@app.command()
def dislike(query_id: str = typer.Argument(..., help="query_id of a FindSimilar answer (`query` prints it)."),
            design_id: str = typer.Argument(...), gateway: str = typer.Option(DEFAULT_GATEWAY),
            api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY")) -> None:
    """Feedback: DESIGN_ID is not similar to the query; your later queries of that image drop it."""
    with _client(gateway, api_key) as client:
        client.dislike(query_id, design_id)
    console.print(f"noted: {design_id} is not similar to {query_id[:12]}…")


@app.command()
def novelty(image: Path = typer.Argument(..., exists=True, dir_okay=False), k: int = typer.Option(6),
            gateway: str = typer.Option(DEFAULT_GATEWAY), api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY")) -> None:
    """How new IMAGE is: 1 − its best cosine similarity to the catalogue, with the nearest designs."""
    with _client(gateway, api_key) as client:
        r = client.novelty(image.read_bytes(), k)
    console.print(f"novelty {r.novelty:.3f} (model {r.embedder_version})")
    for m in r.nearest:
        console.print(f"  {m.score:.3f}  {m.design.brand} {m.design.model} {m.design.year}  [{m.design.design_id}]")


@app.command()
def typicality(image: Path = typer.Argument(..., exists=True, dir_okay=False),
               brand: list[str] = typer.Option([], help="Group: these brands."), year_min: int = typer.Option(None),
               year_max: int = typer.Option(None), design: list[str] = typer.Option([], help="Group: these design ids."),
               gateway: str = typer.Option(DEFAULT_GATEWAY),
               api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY")) -> None:
    """How typical IMAGE is of a group (brands, years and/or designs): cosine to the group's mean embedding."""
    with _client(gateway, api_key) as client:
        r = client.typicality(image.read_bytes(), brands=brand, year_min=year_min, year_max=year_max, design_ids=design)
    console.print(f"typicality {r.typicality:.3f} ({r.compared}); group of {r.group_size} points: members "
                  f"{r.group_mean:.3f} ± {r.group_std:.3f}, z = {r.z_score:+.2f} (model {r.embedder_version})")


@app.command()
def verify(first: Path = typer.Argument(..., exists=True, dir_okay=False),
           second: Path = typer.Argument(..., exists=True, dir_okay=False),
           domain: str = typer.Option("auto", help="Domain of FIRST: auto | photo | sketch"),
           gateway: str = typer.Option(DEFAULT_GATEWAY), api_key: str = typer.Option(None, envvar="DESIGNSEARCH_API_KEY")) -> None:
    """Are FIRST and SECOND the same design? Similarity, decision and the threshold's error rates."""
    with _client(gateway, api_key) as client:
        r = client.verify(first.read_bytes(), second.read_bytes(), domain)
    verdict = "[green]same design[/]" if r.same_design else "[red]different designs[/]"
    console.print(f"{verdict}: similarity {r.similarity:.3f} vs threshold {r.threshold:.3f} "
                  f"(held-out FAR {r.false_accept_rate:.1%}, FRR {r.false_reject_rate:.1%}, EER {r.equal_error_rate:.1%}; "
                  f"model {r.embedder_version})")


@app.command()
def demo(data: Path = typer.Option(None, help="Shared data folder (default ../shared/data or $DESIGNSEARCH_DATA)."),
         classes: str = typer.Option("79-98", help="Stanford Cars classes of the demo catalogue."),
         queries_per_class: int = typer.Option(2, help="Held-out query images per class (not indexed)."),
         var_dir: Path = typer.Option(DEFAULT_VAR / "demo", help="Folder of the demo's index, catalogue and logs."),
         html_out: Path = typer.Option(VAR_DIR / "demo" / "results.html", "--html", help="HTML page of the results."),
         k: int = typer.Option(6),
         fresh: bool = typer.Option(True, help="Start from an empty --var-dir (a reproducible run; --no-fresh "
                                                "reuses what an earlier demo indexed)."),
         serve: bool = typer.Option(None, help="Keep the stack and the web page running after the demo until Ctrl-C "
                                               "(default: when run from a terminal).")) -> None:
    """Start everything (with the web page), ingest the demo catalogue, query held-out images, print results and
    the hit rate; then, from a terminal, keep serving the web page on the demo catalogue until Ctrl-C."""
    import shutil
    import sys

    from designsearch.client import DesignSearchClient
    from designsearch.procs import Stack, free_port, port_is_free

    data = data or default_data_dir()
    lo, _, hi = classes.partition("-")
    images = read_labels(data / "stanford-cars" / "labels.csv")
    catalogue, queries = demo_split(images, range(int(lo), int(hi or lo) + 1), queries_per_class)
    console.print(f"demo: {len(catalogue)} catalogue images of {len({i.design_id for i in catalogue})} designs, "
                  f"{len(queries)} held-out queries (Stanford Cars classes {classes})")
    if fresh and var_dir.exists():
        shutil.rmtree(var_dir)
    stack = Stack(var_dir, ports={"web": 8080 if port_is_free(8080) else free_port()}, web=True)
    with console.status("starting redis, segmenter, embedder, search, gateway, web page ..."):
        stack.start()
    serving = False
    try:
        _ingest(stack.gateway_address, catalogue, None)
        hits, first, rows, top1, top5 = 0, 0, [], 0, 0
        with DesignSearchClient(stack.gateway_address) as client:
            for q in queries:
                r = client.find_similar(q.path.read_bytes(), k)
                hit = any(m.design.design_id == q.design_id for m in r.matches)
                hits += hit
                first += bool(r.matches) and r.matches[0].design.design_id == q.design_id
                labels = [(c.brand, c.model, c.year) for c in client.identify(q.path.read_bytes()).candidates]
                top1 += labels[:1] == [(q.brand, q.model, q.year)]
                top5 += (q.brand, q.model, q.year) in labels
                console.print(_matches_table(f"{q.path.name}: {q.brand} {q.model} {q.year} — "
                                             f"{'[green]same class in top ' + str(k) + '[/]' if hit else '[red]not in top ' + str(k) + '[/]'}", r))
                console.print(_timings(r))
                rows.append((q, r, hit))
        rate = hits / len(queries)
        console.print(f"[bold]same-class hit rate in the top {k}: {hits}/{len(queries)} = {rate:.1%}; first: "
                      f"{first}/{len(queries)} = {first / len(queries):.1%}[/]")
        console.print(f"[bold]Identify (brand, model, year by a vote of the 20 nearest designs): top-1 "
                      f"{top1}/{len(queries)} = {top1 / len(queries):.1%}, top-5 {top5}/{len(queries)} = "
                      f"{top5 / len(queries):.1%}[/]")
        _write_html(html_out, rows, rate, k)
        console.print(f"results page: {html_out}")
        serving = sys.stdin.isatty() if serve is None else serve
    finally:
        if not serving:
            with console.status("stopping ..."):
                stack.stop()
    if serving:
        console.print("the stack keeps running on the demo catalogue; Ctrl-C stops")
        _serve_until_stopped(stack)


def _write_html(path: Path, rows, rate: float, k: int) -> None:
    """A static page: each query image with its top-k thumbnails, scores and labels."""
    def img(data: bytes, h: int = 110) -> str:
        return f'<img style="height:{h}px" src="data:image/jpeg;base64,{base64.b64encode(data).decode()}">'

    parts = [f"<html><head><meta charset='utf-8'><title>designsearch demo</title></head><body style='font-family:sans-serif'>"
             f"<h1>designsearch demo</h1><p>Same-class hit rate in the top {k}: <b>{rate:.1%}</b></p>"]
    for q, r, hit in rows:
        parts.append(f"<h3 style='color:{'green' if hit else 'darkred'}'>{html.escape(q.path.name)}: "
                     f"{html.escape(q.brand)} {html.escape(q.model)} {q.year}</h3><table><tr><td>{img(q.path.read_bytes(), 130)}</td>")
        for m in r.matches:
            same = m.design.design_id == q.design_id
            parts.append(f"<td style='text-align:center;{'background:#dfd' if same else ''}'>{img(m.thumbnail)}<br>"
                         f"{html.escape(m.design.brand)} {html.escape(m.design.model)} {m.design.year}<br>{m.score:.3f}</td>")
        parts.append("</tr></table>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    app()
