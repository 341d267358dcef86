"""``ledgerlink sandbox …``: run, reset and break the simulators from the command line."""

from __future__ import annotations

import contextlib
import importlib
import shutil
import threading
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from ledgerlink.logs import configure_logging
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.statements import statement_command
from ledgerlink.sandbox.supervisor import (
    Supervisor,
    addresses,
    installed_simulators,
    stop_children_on_sigterm,
)
from ledgerlink.settings import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

out = Console()
err = Console(stderr=True)

sandbox_app = typer.Typer(
    help="Local simulators of Sage Business Cloud Accounting, PayTrace and Sage 500: try "
    "ledgerlink end to end without any vendor account. See docs/sandboxes.md.",
    no_args_is_help=True,
)


class Simulator(StrEnum):
    sbc = "sbc"
    paytrace = "paytrace"
    sage500 = "sage500"


FaultOption = Annotated[
    list[str] | None,
    typer.Option(
        "--fault",
        help="Inject a fault, key=value, repeatable: latency_ms=50, jitter_ms=200, "
        "error_rate=0.2, error_status=503, rate_limit_rate=0.1, retry_after_seconds=none, "
        "hang_rate=0.01, drop_rate=0.01, lost_reply_rate=0.01, expired_token_rate=0.05, "
        "lock_timeout_rate=0.1, "
        "import_error_rate=0.05, seed=7.",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Simulator setting, key=value, repeatable (e.g. rate_limit_per_minute=0, "
        "token_lifetime_seconds=60, auto_approve=true). See docs/sandboxes.md.",
    ),
]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _config(model: type[BaseModel], options: list[str], extra: dict[str, Any]) -> Any:
    values: dict[str, Any] = dict(extra)
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            err.print(f"[red]--set {option!r}: write key=value[/red]")
            raise typer.Exit(2)
        values[key.strip()] = value.strip()
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        known = ", ".join(sorted(model.model_fields))
        err.print(f"[red]--set {field}: {first['msg']}[/red] (settings: {known})")
        raise typer.Exit(2) from None


def _faults(options: list[str]) -> FaultInjector:
    try:
        return FaultInjector(FaultPlan.from_cli(options))
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _simulator(name: str) -> Any:
    """The simulator package ``name``, or a clear exit when this build lacks it."""
    if name not in installed_simulators():
        err.print(f"[red]The {name} simulator is not part of this installation.[/red]")
        raise typer.Exit(2)
    return importlib.import_module(f"ledgerlink.sandbox.{name}")


def _serve(app: Starlette, host: str, port: int) -> None:
    import uvicorn

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, server_header=False)


@sandbox_app.command("serve")
def serve(
    system: Annotated[Simulator, typer.Argument(help="Which simulator.")],
    port: Annotated[int | None, typer.Option(help="Port (default 8101/8102/8103).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default loopback).")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="Sage 500 only: SQLAlchemy URL of the ERP database to create."),
    ] = None,
    fault: FaultOption = None,
    setting: SetOption = None,
) -> None:
    """Run one simulator. State persists under var/sandbox/ across restarts. SBC serves its
    API under /v3.1 and OAuth on the same host; Sage 500 creates and seeds its database,
    runs the ERP import processor and serves its admin endpoint on --port."""
    settings = _settings()
    bind = host or settings.sandbox_host
    injector = _faults(fault or [])
    if system is Simulator.sbc:
        sbc = _simulator("sbc")
        config = _config(sbc.SbcConfig, setting or [], {})
        app = sbc.create_app(settings.sandbox_dir / "sbc", config=config, faults=injector)
        out.print(f"SBC simulator on http://{bind}:{port or settings.sandbox_sbc_port}/v3.1")
        _serve(app, bind, port or settings.sandbox_sbc_port)
    elif system is Simulator.paytrace:
        paytrace = _simulator("paytrace")
        config = _config(paytrace.PayTraceConfig, setting or [], {})
        app = paytrace.create_app(settings.sandbox_dir / "paytrace", config=config, faults=injector)
        out.print(f"PayTrace simulator on http://{bind}:{port or settings.sandbox_paytrace_port}")
        _serve(app, bind, port or settings.sandbox_paytrace_port)
    else:
        _serve_sage500(settings, bind, port, database_url, injector, setting or [])


def _serve_sage500(
    settings: Settings,
    bind: str,
    port: int | None,
    database_url: str | None,
    injector: FaultInjector,
    setting: list[str],
) -> None:
    sage500 = _simulator("sage500")
    settings.sandbox_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or settings.sandbox_sage500_url
    files = settings.sandbox_dir / "sage500-files"
    config = _config(
        sage500.Sage500Config,
        setting,
        {"inbox_dir": str(files / "inbox"), "outbox_dir": str(files / "outbox")},
    )
    engine = sage500.simulator_engine(url)
    sage500.create_schema(engine)
    sage500.seed(engine, config)
    processor = sage500.ImportProcessor(engine, config, faults=injector)
    stop = threading.Event()
    loop = threading.Thread(target=processor.run_forever, args=(stop,), name="sage500-import")
    loop.start()
    admin = sage500.create_admin_app(engine, config, processor, injector)
    out.print(
        f"Sage 500 simulator: database {engine.url.render_as_string(hide_password=True)}, "
        f"import processor every {config.import_interval_seconds} s, admin on "
        f"http://{bind}:{port or settings.sandbox_sage500_port}/_sandbox"
    )
    try:
        _serve(admin, bind, port or settings.sandbox_sage500_port)
    finally:
        stop.set()
        loop.join(timeout=10)
        engine.dispose()


@sandbox_app.command("up")
def up(fault: FaultOption = None) -> None:
    """Run all three simulators until Ctrl-C (logs under var/sandbox/logs/)."""
    settings = _settings()
    supervisor = Supervisor(settings, settings.sandbox_dir / "logs")
    extra = tuple(arg for f in fault or [] for arg in ("--fault", f))
    stop_children_on_sigterm()
    supervisor.start(installed_simulators(), extra_args=extra)
    try:
        ready = supervisor.wait_ready()
    except RuntimeError as exc:
        supervisor.stop()
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for name, address in ready.items():
        out.print(f"  {name:<9} {address.base_url}")
    out.print("Simulators are up. Press Ctrl-C to stop them.")
    with contextlib.suppress(KeyboardInterrupt):
        supervisor.wait()


@sandbox_app.command("reset")
def reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: Annotated[
        str | None, typer.Option(help="Sage 500 database to drop and recreate, if not the default.")
    ] = None,
) -> None:
    """Forget everything the simulators stored; they re-seed on their next start."""
    settings = _settings()
    if not yes:
        typer.confirm(f"Delete all simulator data under {settings.sandbox_dir}?", abort=True)
    for name in installed_simulators():
        simulator = importlib.import_module(f"ledgerlink.sandbox.{name}")
        if name == "sage500":
            if database_url:
                simulator.reset(database_url)
        else:
            simulator.reset(settings.sandbox_dir / name)
    _remove(settings.sandbox_dir)
    out.print("Simulator data removed; the next start seeds fresh data.")


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


sandbox_app.command("statement")(statement_command)


@sandbox_app.command("fault")
def set_fault(
    system: Annotated[Simulator, typer.Argument(help="Which running simulator.")],
    fault: Annotated[
        list[str] | None, typer.Argument(help="key=value pairs, as for --fault; none clears.")
    ] = None,
) -> None:
    """Change the faults of a running simulator (through its /_sandbox/faults endpoint)."""
    settings = _settings()
    base = addresses(settings)[system.value].base_url
    try:
        if fault:
            plan = FaultPlan.from_cli(fault)
            response = httpx.put(f"{base}/_sandbox/faults", json=plan.model_dump(), timeout=5)
        else:
            response = httpx.delete(f"{base}/_sandbox/faults", timeout=5)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except httpx.HTTPError as exc:
        err.print(f"[red]The {system.value} simulator at {base} did not answer: {exc}[/red]")
        raise typer.Exit(1) from None
    out.print_json(response.text)
