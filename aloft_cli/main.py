"""`aloft`: Aloft's (and WebODM's) API from the command line.

Exit codes: 0 ok, 1 task failed or canceled, 2 usage (bad arguments, an unknown project, task or
asset, a request the server refused), 3 auth (not logged in, wrong credentials, expired token,
revoked key, no permission), 4 server unreachable (or failing with 5xx after the retries);
130 interrupted (Ctrl-C), the upload's resume state kept.
Progress goes to stderr; results (tables, `--json`) to stdout.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from aloft_sdk import Client
from aloft_sdk.client import COMPLETED, status_name
from aloft_sdk.config import Credentials, normalize_url
from aloft_sdk.errors import AloftError, AuthError, TaskFailed, UsageError
from aloft_sdk.uploads import DEFAULT_CHUNK_SIZE, Uploader, UploadState, collect_files

from .progress import DownloadDisplay, UploadDisplay, WaitDisplay, human_bytes, log

TASK_HELP = ("TASK is PROJECT_ID/TASK_ID as `aloft process` and `aloft tasks` print it, or a task id "
             "(or its first characters), looked up in --project or in every project you see.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
project_option = click.option("--project", "-p", metavar="NAME_OR_ID", help="The task's project.")


class Session:
    def __init__(self, server: str | None):
        self.server = server

    def client(self) -> Client:
        found = Credentials().get(self.server)
        if found is None:
            where = f" to {self.server}" if self.server else ""
            raise AuthError(f"not logged in{where}: run `aloft login URL` first")
        url, entry = found
        return Client(url, entry.get("token") or entry.get("api_key"))


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def show(items: list[dict], as_json: bool, headers: list[str], row) -> None:
    """A list command's answer: the items as JSON (`--json`), or a table of `row(item)`s."""
    if as_json:
        emit_json(items)
    else:
        table(headers, [row(item) for item in items])


def table(headers: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    grid = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    Console(width=max(120, Console().width)).print(grid)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", "-s", envvar="ALOFT_SERVER", metavar="URL",
              help="Which logged-in server to use (default: the last `aloft login`).")
@click.version_option("0.1.0", prog_name="aloft")
@click.pass_context
def cli(ctx, server):
    """Aloft from the command line: log in, process a folder of images, follow, download."""
    ctx.obj = Session(server)


# ---------------------------------------------------------------------------------- login

@cli.command()
@click.argument("url")
@click.option("--username", "-u", help="Prompted when not given.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--api-key", envvar="ALOFT_API_KEY", help="Store this API key instead (sent as `JWT <key>`).")
def login(url, username, password_stdin, api_key):
    """Log in to the server at URL and keep the credentials (mode 0600, per server).

    The password comes from a prompt, from --password-stdin or from ALOFT_PASSWORD; only the
    token it buys is stored."""
    url = normalize_url(url)
    client = Client(url)
    if api_key:
        client.authenticate(api_key.strip())
        client.check()
        entry = {"api_key": api_key.strip()}
    else:
        username = username or click.prompt("Username", err=True)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = os.environ.get("ALOFT_PASSWORD") or click.prompt("Password", hide_input=True, err=True)
        client.login(username, password)
        entry = {"token": client.token, "username": username}
    Credentials().save(url, entry)
    log(f"logged in to {url}" + (f" as {username}" if not api_key else " with an API key"))


@cli.command()
@click.argument("url", required=False)
def logout(url):
    """Forget the credentials of URL (default: the current server)."""
    removed = Credentials().remove(url)
    if removed is None:
        raise UsageError(f"not logged in to {url or 'any server'}")
    log(f"logged out of {removed}")


# ---------------------------------------------------------------------------------- projects

@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def projects(ctx, as_json):
    """List projects (the default), or create or delete one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(projects_list, as_json=as_json)


@projects.command("list")
@json_option
@click.pass_obj
def projects_list(session, as_json):
    """List the projects you can see."""
    show(session.client().projects(), as_json, ["ID", "NAME", "TASKS", "CREATED"],
         lambda p: [p["id"], p["name"], len(p.get("tasks") or []), (p.get("created_at") or "")[:19]])


@projects.command("create")
@click.argument("name")
@click.option("--description", default="")
@json_option
@click.pass_obj
def projects_create(session, name, description, as_json):
    """Create a project."""
    project = session.client().create_project(name, description)
    if as_json:
        return emit_json(project)
    click.echo(project["id"])


@projects.command("delete")
@click.argument("project_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.pass_obj
def projects_delete(session, project_id, yes):
    """Delete a project and all its tasks."""
    client = session.client()
    project = client.project(project_id)
    if not yes:
        click.confirm(f"Delete project {project_id} ({project['name']}) and its tasks?", abort=True, err=True)
    client.delete_project(project_id)
    log(f"deleted project {project_id}")


@cli.command()
@click.argument("project")
@json_option
@click.pass_obj
def tasks(session, project, as_json):
    """List the tasks of PROJECT (a name or an id)."""
    client = session.client()
    found = client.find_project(project)
    if found is None:
        raise UsageError(f"no project {project!r}")
    show(client.tasks(found["id"]), as_json, ["TASK", "NAME", "STATUS", "PROGRESS", "IMAGES", "CREATED"],
         lambda t: [f"{t['project']}/{t['id']}", t.get("name"), _status_text(t), f"{_progress(t):.0f}%",
                    t.get("images_count"), (t.get("created_at") or "")[:19]])


@cli.command()
@json_option
@click.pass_obj
def nodes(session, as_json):
    """List the processing nodes."""
    show(session.client().nodes(), as_json, ["ID", "NODE", "ONLINE", "QUEUE", "ENGINE", "LABEL"],
         lambda n: [n["id"], f"{n['hostname']}:{n['port']}", "yes" if n.get("online") else "no",
                    n.get("queue_count"), f"{n.get('engine') or ''} {n.get('engine_version') or ''}".strip(),
                    n.get("label")])


# ---------------------------------------------------------------------------------- process

def parse_options(pairs: tuple[str, ...]) -> list[dict]:
    """`k=v` pairs as WebODM's options list; values read as JSON when they are (24, true)."""
    options = []
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--option")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        options.append({"name": name.strip(), "value": value})
    return options


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--project", "-p", required=True, metavar="NAME_OR_ID",
              help="The project (created when no project has this name).")
@click.option("--name", help="The task's name.")
@click.option("--preset", metavar="NAME", help="Start from this preset's options (`/api/presets/`).")
@click.option("--option", "-O", "options", multiple=True, metavar="NAME=VALUE",
              help="A processing option (repeatable), e.g. -O orthophoto-resolution=2.")
@click.option("--node", type=int, metavar="ID", help="Process on this node (default: Aloft chooses).")
@click.option("--wait", "-w", is_flag=True, help="Follow the task until it ends.")
@click.option("--download", "-d", "assets", multiple=True, metavar="ASSET",
              help="Download this asset when the task completes (repeatable; implies --wait).")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where downloads go.")
@click.option("--parallel", "-j", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Files uploaded at once.")
@click.option("--chunk-size", type=click.IntRange(1024), default=DEFAULT_CHUNK_SIZE, show_default=True,
              help="Dropzone chunk size for WebODM's upload/ (larger files go in chunks).")
@click.option("--interval", type=click.FloatRange(0.1), default=1.0, show_default=True,
              help="Seconds between looks at the task while waiting.")
@json_option
@click.pass_obj
def process(session, images, project, name, preset, options, node, wait, assets, output_dir, parallel,
            chunk_size, interval, as_json):
    """Upload IMAGES (files or folders) into a new task of --project, and process them.

    Uploads go straight to S3 with presigned PUTs, --parallel at a time, each retried with
    backoff (on a server without presigned uploads, WebODM's upload/). Interrupted and run again
    with the same arguments, it resumes: the same task, only the missing files."""
    files = collect_files(images)
    task_options = parse_options(options)
    client = session.client()
    found, created = client.find_or_create_project(project)
    project_id = found["id"]
    log(f"project {found['name']} (id {project_id})" + (" created" if created else ""))
    fields: dict = {"name": name, "processing_node": node}
    if preset or task_options:
        merged = {o["name"]: o for o in (client.preset_options(preset) if preset else [])}
        merged.update({o["name"]: o for o in task_options})
        fields["options"] = list(merged.values())
    state = UploadState(client.url, project_id, files)
    display = UploadDisplay()
    uploader = Uploader(client, project_id, files, state, parallel=parallel, chunk_size=chunk_size,
                        progress=display, task_fields=fields)
    try:
        task = uploader.run()
    finally:
        display.close()
    ref = f"{project_id}/{task['id']}"
    log(f"task {ref}: {task.get('images_count')} images committed")
    if not (wait or assets):
        state.remove()
        return _print_task(task, as_json)
    task = _follow(client, task, ref, interval, state)
    for asset in assets:
        _download(client, task, asset, output_dir)
    state.remove()
    _print_task(task, as_json)


def _print_task(task: dict, as_json: bool) -> None:
    if as_json:
        emit_json(task)
    else:
        click.echo(f"{task['project']}/{task['id']}")


def _follow(client: Client, task: dict, ref: str, interval: float, state: UploadState | None = None) -> dict:
    display = WaitDisplay(ref)
    try:
        final = client.wait(task["project"], task["id"], interval=interval, on_update=display.update)
    except TaskFailed:
        if state is not None:
            state.remove()  # the job is over: the same command later starts a new task
        raise
    finally:
        display.close()
    log(f"task {ref}: COMPLETED in {final.get('processing_time', 0) / 1000:.1f} s")
    return final


def _download(client: Client, task: dict, asset: str, directory: str) -> Path:
    if task.get("available_assets") is not None and asset not in task["available_assets"]:
        raise UsageError(f"task {task['id']} has no {asset!r}; it has: {', '.join(task['available_assets'])}")
    display = DownloadDisplay()
    path = client.download(task["project"], task["id"], asset, directory,
                           on_start=lambda size: display.start(asset, size), on_bytes=display.advance)
    display.finish(path)
    return path


# ---------------------------------------------------------------------------------- one task

def _status_text(task: dict) -> str:
    status = status_name(task.get("status"))
    if task.get("partial"):
        return "UPLOADING"
    return status


def _progress(task: dict) -> float:
    return 100.0 if task.get("status") == COMPLETED else float(task.get("running_progress") or 0) * 100


@cli.command(epilog=TASK_HELP)
@click.argument("task_ref", metavar="TASK")
@project_option
@json_option
@click.pass_obj
def status(session, task_ref, project, as_json):
    """Show a task."""
    task = session.client().find_task(task_ref, project)
    if as_json:
        return emit_json(task)
    rows = [("task", f"{task['project']}/{task['id']}"), ("name", task.get("name")),
            ("status", _status_text(task)), ("progress", f"{_progress(task):.0f}%"),
            ("images", task.get("images_count")), ("node", task.get("processing_node_name")),
            ("processing time", f"{max(0, task.get('processing_time') or 0) / 1000:.1f} s"),
            ("size", human_bytes((task.get("size") or 0) * 1e6)), ("created", task.get("created_at")),
            ("assets", ", ".join(task.get("available_assets") or [])), ("error", task.get("last_error"))]
    for key, value in rows:
        if value not in (None, ""):
            click.echo(f"{key + ':':17}{value}")


@cli.command(epilog=TASK_HELP)
@click.argument("task_ref", metavar="TASK")
@project_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the task ends.")
@click.option("--interval", type=click.FloatRange(0.1), default=1.0, show_default=True)
@json_option
@click.pass_obj
def output(session, task_ref, project, follow, interval, as_json):
    """Print a task's console output (with --json: {"lines": [...]}, or one JSON string per line
    with --follow)."""
    client = session.client()
    task = client.find_task(task_ref, project)
    if not follow:
        lines = client.output(task["project"], task["id"])
        return emit_json({"lines": lines}) if as_json else click.echo("\n".join(lines))
    for current, lines in client.follow(task["project"], task["id"], interval=interval):
        for line in lines:
            click.echo(json.dumps(line) if as_json else line)
        task = current
    if task.get("status") != COMPLETED:
        raise TaskFailed(task, f"task {task['id']} {status_name(task.get('status'))}")


@cli.command(epilog=TASK_HELP)
@click.argument("task_ref", metavar="TASK")
@click.argument("assets", nargs=-1, required=True, metavar="ASSET...")
@project_option
@click.option("--output-dir", "-o", type=click.Path(file_okay=False), default=".", show_default=True)
@click.pass_obj
def download(session, task_ref, assets, project, output_dir):
    """Download assets of a completed task (orthophoto.tif, all.zip, ...)."""
    client = session.client()
    task = client.find_task(task_ref, project)
    for asset in assets:
        _download(client, task, asset, output_dir)


def _action(name: str, doc: str):
    @cli.command(name, help=doc, epilog=TASK_HELP)
    @click.argument("task_ref", metavar="TASK")
    @project_option
    @click.pass_obj
    def command(session, task_ref, project):
        client = session.client()
        task = client.find_task(task_ref, project)
        client.action(task["project"], task["id"], name)
        log(f"task {task['project']}/{task['id']}: {name} requested")
    return command


_action("cancel", "Cancel a task.")
_action("restart", "Restart a task (processing starts again).")
_action("remove", "Remove a task and its files.")


# ---------------------------------------------------------------------------------- entry point

def main(argv: list[str] | None = None) -> None:
    """Run the command line, turning errors into the documented exit codes."""
    try:
        code = cli.main(args=argv, prog_name="aloft", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code  # usage errors: 2
    except click.exceptions.Abort:
        log("interrupted: run the same command again to resume")
        sys.stderr.flush()
        os._exit(130)  # upload threads may be mid-request: the state file is already written
    except AloftError as exc:
        log(f"error: {exc}")
        code = exc.exit_code
    except KeyboardInterrupt:
        log("interrupted: run the same command again to resume")
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
