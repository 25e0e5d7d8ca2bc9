"""`pcloud …`: the operator's command line. Settings come from the environment like every PCloud process.

Each command calls a package's public service (admin, pairing, apps, files jobs, search rebuild, key store,
runtime.jobs / runtime.events for dead letters and the outbox); exit status 0 on success, 1 on a refusal
(the message says why), 2 on bad usage.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from runtime.errors import ApiError
from runtime.settings import SettingsError, load_settings

out = Console(width=None if sys.stdout.isatty() else 240)  # piped: wide rows, nothing cut off
err = Console(stderr=True, soft_wrap=True)  # one line per message: logs and grep keep it whole


class Context:
    """Settings and clients, built on first use (so `pcloud doctor` works when the settings do not)."""

    def __init__(self):
        self._settings = None
        self._clients = None

    @property
    def settings(self):
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def clients(self):
        if self._clients is None:
            from runtime.clients import Clients

            self._clients = Clients(self.settings)
        return self._clients

    def close(self):
        if self._clients is not None:
            self._clients.close()


pass_ctx = click.make_pass_decorator(Context)


@contextmanager
def progress_bars(enabled: bool = True):
    """A rich progress bar per phase; yields the `progress(what, done, total)` callback the services take."""
    if not enabled:
        yield lambda *_: None
        return
    with Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield update


def table(*columns: str, rows) -> None:
    t = Table()
    for column in columns:
        t.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
        count += 1
    out.print(t if count else "[dim](none)[/dim]")


@click.group()
@click.pass_context
def cli(ctx):
    """Administer a PCloud instance (settings from the PCLOUD_* environment, like the server)."""
    ctx.obj = Context()
    ctx.call_on_close(ctx.obj.close)


# --- users -------------------------------------------------------------------------------------------------
@cli.group()
def users():
    """Accounts: list, roles, disable."""


def _admin(ctx: Context):
    from functions.admin.service import AdminService

    return AdminService(ctx.clients.db, ctx.clients.mongo)


@users.command("list")
@click.option("--limit", default=100, show_default=True)
@pass_ctx
def users_list(ctx, limit):
    page = _admin(ctx).list_users(None, limit)
    table("id", "email", "name", "role", "disabled", "created", rows=(
        (u["id"], u["email"], u["name"], u["role"], "yes" if u["disabled"] else "", u["created_at"])
        for u in page["items"]))


@users.command("set-role")
@click.argument("user_id")
@click.argument("role", type=click.Choice(["admin", "member"]))
@pass_ctx
def users_set_role(ctx, user_id, role):
    user = _admin(ctx).update_user(user_id, role=role)
    out.print(f"{user['email']} is now {user['role']}")


@users.command("disable")
@click.argument("user_id")
@click.option("--enable", is_flag=True, help="enable the account again instead")
@pass_ctx
def users_disable(ctx, user_id, enable):
    """Disable an account (its refresh tokens are revoked; access tokens end within 30 s)."""
    user = _admin(ctx).update_user(user_id, disabled=not enable)
    out.print(f"{user['email']} is {'disabled' if user['disabled'] else 'enabled'}")


# --- devices -----------------------------------------------------------------------------------------------
@cli.group()
def devices():
    """A user's NAS boxes and phones."""


def _pairing(ctx: Context):
    from functions.pairing.service import PairingService

    return PairingService.from_clients(ctx.clients)


@devices.command("list")
@click.option("--user", "user_id", required=True, help="the owner's user id (pcloud users list)")
@pass_ctx
def devices_list(ctx, user_id):
    page = _pairing(ctx).list_devices(user_id, None, 200)
    table("id", "kind", "name", "online", "last seen", "paired", rows=(
        (d.get("device_id"), d.get("kind"), d.get("name"), "yes" if d.get("online") else "", d.get("last_seen"),
         d.get("paired_at"))
        for d in page["items"]))


@devices.command("unpair")
@click.option("--user", "user_id", required=True)
@click.argument("device_id")
@pass_ctx
def devices_unpair(ctx, user_id, device_id):
    _pairing(ctx).unpair(user_id, device_id)
    out.print(f"device {device_id} unpaired")


# --- apps --------------------------------------------------------------------------------------------------
@cli.group()
def apps():
    """Installed apps (executions and retries are only offered over HTTP: /apps/v1/executions)."""


def _manager(ctx: Context):
    from functions.apps.service import AppManager

    return AppManager(ctx.clients.db, ctx.settings)


def _admin_identity(ctx: Context, user_id: str):
    from runtime import users as users_owner
    from runtime.identity import ADMIN_SCOPE, USER_SCOPES, Identity

    standing = users_owner.standing(ctx.clients.db, user_id)
    if not standing or standing.get("role") != "admin" or standing.get("disabled"):
        raise click.ClickException(f"{user_id} is not an active admin (pcloud users list)")
    return Identity(user_id=user_id, scopes=(*USER_SCOPES, ADMIN_SCOPE))


@apps.command("list")
@pass_ctx
def apps_list(ctx):
    table("name", "version", "state", "namespace", "title", rows=(
        (a.get("name"), a.get("version"), a.get("state"), a.get("namespace"), a.get("title"))
        for a in _manager(ctx).list()["items"]))


@apps.command("install")
@click.argument("source")
@click.option("--as", "admin_id", required=True, help="the admin user the app is submitted by")
@pass_ctx
def apps_install(ctx, source, admin_id):
    """SOURCE: an app archive (.tar.gz/.zip) or the name of a bundled app. It then waits for `approve`."""
    identity = _admin_identity(ctx, admin_id)
    path = Path(source)
    doc = (_manager(ctx).submit(identity, path.read_bytes()) if path.is_file()
           else _manager(ctx).submit_catalog(identity, source))
    out.print(f"{doc.get('name')} {doc.get('version')}: {doc.get('state')}")


@apps.command("approve")
@click.argument("name")
@click.option("--as", "admin_id", required=True, help="the admin user approving it")
@click.option("--replay", is_flag=True, help="run the app over existing events once it is active")
@pass_ctx
def apps_approve(ctx, name, admin_id, replay):
    doc = _manager(ctx).approve(_admin_identity(ctx, admin_id), name, replay=replay)
    out.print(f"{doc.get('name')} {doc.get('version')}: {doc.get('state')} (the apps runner starts it)")


# --- maintenance -------------------------------------------------------------------------------------------
@cli.group()
def gc():
    """Files maintenance."""


@gc.command("run")
def gc_run():
    """Expire stale uploads, purge old trash, collect unreferenced blocks (what the scheduler runs)."""
    from functions.files import tasks

    with progress_bars() as progress:
        for i, job in enumerate((tasks.expire_uploads, tasks.purge_trash, tasks.collect_blocks)):
            count = job()
            progress("gc", i + 1, 3)
            out.print(f"{job.__name__}: {count}")


@cli.group()
def outbox():
    """The push outbox (events waiting for the relay)."""


@outbox.command("list")
@click.option("--status", type=click.Choice(["pending", "claimed", "done"]))
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def outbox_list(ctx, status, limit):
    from runtime import events

    counts, oldest = events.outbox_overview(ctx.clients.db, status, limit)
    out.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "outbox empty")
    table("id", "type", "user", "status", "attempts", "created", rows=(
        (e["_id"], e.get("type"), e.get("user_id"), e.get("status"), e.get("attempts"), e.get("created_at"))
        for e in oldest))


@outbox.command("retry")
@click.argument("event_ids", nargs=-1)
@click.option("--claimed", "all_claimed", is_flag=True, help="every event a relay claimed and never finished")
@pass_ctx
def outbox_retry(ctx, event_ids, all_claimed):
    """Hand claimed events back to the relay (they are claimed again anyway 5 minutes after a relay died)."""
    from runtime import events

    ids = list(event_ids)
    if all_claimed:
        ids += [e["_id"] for e in events.outbox_overview(ctx.clients.db, "claimed", 10000)[1]]
    if not ids:
        raise click.UsageError("name event ids or pass --claimed")
    events.release(ctx.clients.db, ids)
    out.print(f"{len(ids)} event(s) handed back to the relay")


QUEUES = ("push", "default", "maintenance")  # runtime/worker.py


@cli.group("dead-letters")
def dead_letters():
    """Background jobs that failed (rq's failed registry per queue)."""


@dead_letters.command("list")
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def dead_letters_list(ctx, limit):
    from runtime import jobs

    rows = []
    for name in QUEUES:
        for job in jobs.failed_jobs(ctx.clients.queue(name), limit):
            reason = (job.latest_result().exc_string if job.latest_result() else "") or ""
            rows.append((name, job.id, job.func_name, job.ended_at, reason.strip().splitlines()[-1:] and
                         reason.strip().splitlines()[-1][:100]))
    table("queue", "job", "function", "failed at", "error", rows=rows)


@dead_letters.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--queue", "queue_names", multiple=True, type=click.Choice(QUEUES))
@pass_ctx
def dead_letters_retry(ctx, job_ids, queue_names):
    """Requeue the failed jobs named (default: every failed job)."""
    from runtime import jobs

    total = sum(jobs.requeue_failed(ctx.clients.queue(n), list(job_ids) or None) for n in queue_names or QUEUES)
    out.print(f"{total} job(s) requeued")


@cli.group()
def search():
    """The search index."""


@search.command("reindex")
@click.option("--quiet", is_flag=True)
@pass_ctx
def search_reindex(ctx, quiet):
    """Clear the index and rebuild it from the files tree and the event log."""
    counts = _reindex(ctx, progress=not quiet)
    out.print(f"reindexed {counts['files']} files and {counts['graph_events']} graph events")


def _reindex(ctx: Context, progress: bool) -> dict:
    from functions.search import reindex
    from functions.search import service as search_service

    return reindex.rebuild(ctx.clients.db, search_service.index_for(ctx.settings), progress=progress)


@cli.group()
def keys():
    """The signing keys."""


@keys.command("rotate")
@pass_ctx
def keys_rotate(ctx):
    """A new current key; the old one stays published, so live tokens keep verifying."""
    store = ctx.clients.keys
    before = store.public_jwks()["keys"][0]["kid"]
    out.print(f"new signing key {store.rotate()}; previous {before} stays published until the next rotation")


# --- backup, restore, doctor -------------------------------------------------------------------------------
@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--with-blocks", is_flag=True, help="also copy the block bytes out of the store")
@click.option("--quiet", is_flag=True)
@pass_ctx
def backup_cmd(ctx, file, with_blocks, quiet):
    """Write a consistent archive of the database, key store, installed apps and settings to FILE."""
    from pcloud_cli import backup

    with progress_bars(not quiet) as progress:
        report = backup.backup(ctx.settings, ctx.clients, file, with_blocks=with_blocks, progress=progress)
    out.print(f"{file}: {len(report.collections)} collections, {sum(report.collections.values())} documents, "
              f"{report.files} data files, {report.blocks} blocks; point in time {report.marker}")
    out.print("[yellow]the archive holds the signing keys and secrets: keep it as safe as the server[/yellow]")


@cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace the contents of a non-empty instance")
@click.option("--no-reindex", is_flag=True, help="skip rebuilding the search index afterwards")
@click.option("--quiet", is_flag=True)
@pass_ctx
def restore_cmd(ctx, file, force, no_reindex, quiet):
    """Restore FILE into this (empty) instance; checksums are verified before anything is written."""
    from pcloud_cli import backup

    with progress_bars(not quiet) as progress:
        report = backup.restore(ctx.settings, ctx.clients, file, force=force, progress=progress)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    out.print(f"restored {len(report.collections)} collections, {sum(report.collections.values())} documents, "
              f"{report.files} data files, {report.blocks} blocks (point in time {report.marker})")
    if not no_reindex:
        counts = _reindex(ctx, progress=not quiet)
        out.print(f"search: reindexed {counts['files']} files and {counts['graph_events']} graph events")
    out.print("restart every PCloud process so they read the restored key store")


@cli.command("doctor")
@click.option("--timeout", default=3.0, show_default=True, help="seconds per dependency")
def doctor_cmd(timeout):
    """Check the settings and every dependency; exit 1 when something is wrong."""
    from pcloud_cli import doctor

    checks = doctor.run_checks(timeout=timeout)
    style = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}
    t = Table("check", "status", "detail")
    for c in checks:
        t.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", c.detail)
    out.print(t)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        err.print(f"[bold red]{len(failed)} problem(s):[/] {', '.join(failed)}")
        raise click.exceptions.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: refusals (ApiError, BackupError, SettingsError) print one line and exit 1."""
    from pcloud_cli.backup import BackupError

    try:
        status = cli.main(args=argv, prog_name="pcloud", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        err.print("aborted")
        return 1
    except (BackupError, SettingsError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 1
    except ApiError as exc:
        err.print(f"[bold red]error:[/] {exc.message} ({exc.code})", highlight=False)
        return 1
    return status if isinstance(status, int) else 0
