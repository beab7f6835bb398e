"""``sitewatch serve``: the web view (docs/web.md)."""

from __future__ import annotations

import click

from sitewatch.cli.common import Ctx, err, esc, out, pass_ctx
from sitewatch.errors import MissingExtraError

WEB_HELP = "the web view needs FastAPI and uvicorn: pip install 'sitewatch[web]'"
LOCAL = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default answers this machine only; another "
                   "address makes the catalogue readable by anyone who can reach it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--read-only", is_flag=True,
              help="No writes at all (alert actions, parts, notes, reports, briefs).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="A host name the page may be reached by besides this machine's own "
                   "(e.g. behind a proxy); repeatable; '*' for any.")
@pass_ctx
def serve(ctx: Ctx, host: str, port: int, read_only: bool, allow_hosts: tuple[str, ...]
          ) -> None:
    """Serve the web view of the catalogue: sites, maps with imagery of every date, compare,
    timelines, alerts, assessment, reports, briefs and the parts editor.

    Every write needs the bearer token made on first start (printed once, kept in
    HOME/web-token with mode 0600). Stop with Ctrl-C.
    """
    try:
        import uvicorn

        from sitewatch.web.app import LOCAL_HOSTS, create_app
        from sitewatch.web.auth import load_or_create_token, token_path
    except ImportError:
        raise MissingExtraError(WEB_HELP) from None
    home = ctx.home
    token = None
    if not read_only:
        token, created = load_or_create_token(home)
        if created:
            out.print("write token (shown once; kept in "
                      f"{esc(token_path(home))}, mode 0600):\n  {token}", soft_wrap=True)
        else:
            out.print(f"write token: in {esc(token_path(home))}", soft_wrap=True)
    allowed = list(LOCAL_HOSTS) + [h.lower() for h in allow_hosts]
    if host not in LOCAL:
        if host not in ("0.0.0.0", "::"):
            allowed.append(host.lower())
        err.print(esc(f"listening on {host}: anyone who can reach this address can read the "
                      "catalogue (writes still need the token)"), soft_wrap=True)
        if host in ("0.0.0.0", "::") and not allow_hosts:
            err.print("  give --allow-host NAME for the names the page is reached by",
                      soft_wrap=True)
    app = create_app(home, read_only=read_only, token=token, allowed_hosts=allowed,
                     store=ctx.store() if ctx.db_url else None)  # --db: the server's store
    shown = f"[{host}]" if ":" in host else host
    out.print(f"sitewatch web view of {esc(home)}: http://{shown}:{port}/"
              + ("  (read-only)" if read_only else ""), soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if ctx.verbosity <= 0
                else "info", server_header=False)


__all__ = ["WEB_HELP", "serve"]
