"""Tasks that operate the running stack: start, stop, status, logs, doctor."""

from __future__ import annotations

from typing import Any

from invoke.exceptions import Exit

from synthorg_tasks.output import env_flag
from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = ["doctor", "logs", "start", "status", "stop"]


@synthorg_task(
    help={
        "no_wait": "Return after compose up without waiting for the backend.",
        "timeout": "Readiness budget as a duration such as 90s (env "
        "SYNTHORG_HEALTH_WAIT_TIMEOUT; default 90s; > 0).",
        "no_pull": "Skip verification and pulls; every image must be local.",
        "dry_run": "Print the plan and exit 0 without contacting the engine.",
        "no_detach": "Run compose up in the foreground; Ctrl+C stops the stack.",
        "skip_verify": "Skip image verification (env SYNTHORG_SKIP_VERIFY); "
        "the images are then unverified.",
        "no_verify": "Alias of --skip-verify.",
        "trusted_root": "Sigstore trusted-root JSON file (env "
        "SYNTHORG_SIGSTORE_TRUSTED_ROOT; default the public-good root).",
    }
)
def start(
    c: Any,
    no_wait: bool = False,
    timeout: str | None = None,
    no_pull: bool = False,
    dry_run: bool = False,
    no_detach: bool = False,
    skip_verify: bool = False,
    no_verify: bool = False,
    trusted_root: str | None = None,
    *,
    common: CommonOptions,
) -> None:
    """Verify, pull and start the stack, then wait until the backend is ready."""
    import os

    from synthorg_tasks.lifecycle.start import StartRequest, run_start

    request = StartRequest(
        no_wait=no_wait,
        timeout=timeout,
        no_pull=no_pull,
        dry_run=dry_run,
        no_detach=no_detach,
        skip_verify=skip_verify or no_verify or env_flag("SYNTHORG_SKIP_VERIFY"),
        trusted_root=trusted_root or os.environ.get("SYNTHORG_SIGSTORE_TRUSTED_ROOT"),
    )
    out = common.out
    if not (out.quiet or out.json or out.plain):
        from synthorg_tasks import __version__

        out.info(f"synthorg-tasks {__version__}")
    result = run_start(request, common.data_dir(), out)
    if result.dry_run:
        if out.json:
            out.document({"dry_run": True, "plan": dict(result.plan)})
        else:
            out.table("Start plan (dry run)", result.plan)
        return
    if out.json:
        out.document(result.document())
        return
    title = "Ready" if result.ready else "Started"
    out.table(
        title,
        [("Dashboard", result.urls["dashboard"]), ("API", result.urls["api"])],
    )
    if request.no_pull:
        out.info("hint: images not verified -- run 'synthorg update'")


@synthorg_task(
    help={
        "timeout": "Shutdown timeout in whole seconds, N or Ns (default Compose's "
        "10 s).",
        "volumes": "Also delete the project's named volumes (asks first; --yes).",
    },
    short_flags={"timeout": "t"},
)
def stop(
    c: Any,
    timeout: str | None = None,
    volumes: bool = False,
    *,
    common: CommonOptions,
) -> None:
    """Stop and remove the containers; volumes are kept unless --volumes."""
    from synthorg_tasks.lifecycle.stop import StopRequest, report_stop, run_stop

    result = run_stop(
        StopRequest(timeout=timeout, volumes=volumes, yes=common.yes),
        common.data_dir(),
        common.out,
    )
    report_stop(result, common.out)


@synthorg_task(
    help={
        "wide": "Add the PORTS column and the PostgreSQL volume size.",
        "no_trunc": "Show full image references.",
        "services": "Comma list of services to check (names ^[A-Za-z0-9_-]+$).",
        "watch": "Re-collect every --interval until Ctrl+C.",
        "interval": "Watch interval as a duration such as 2s (default 2s; > 0).",
        "check": "Print nothing; exit with the verdict's code only.",
    },
    short_flags={"watch": "w"},
)
def status(
    c: Any,
    wide: bool = False,
    no_trunc: bool = False,
    services: str | None = None,
    watch: bool = False,
    interval: str = "2s",
    check: bool = False,
    *,
    common: CommonOptions,
) -> None:
    """Show the verdict: OK (0), DEGRADED (5), CRITICAL (3) or unreachable (4)."""
    from synthorg_tasks.lifecycle.status import StatusRequest, run_status

    request = StatusRequest(
        wide=wide,
        no_trunc=no_trunc,
        services=services,
        watch=watch,
        interval=interval,
        check=check,
    )
    code = run_status(request, common.data_dir(), common.out)
    if code:
        raise Exit(code=code)


@synthorg_task(
    help={
        "follow": "Keep streaming new log lines until Ctrl+C.",
        "tail": "Lines per container from the end, or all (default 100).",
        "since": "Only lines since this time (Compose v2 only).",
        "until": "Only lines before this time (Compose v2 only).",
        "timestamps": "Prefix every line with its timestamp.",
        "no_log_prefix": "Do not prefix lines with the service name.",
        "services": "Services to show, comma-separated (default all).",
    },
    short_flags={"follow": "f", "timestamps": "t"},
)
def logs(
    c: Any,
    services: str = "",
    follow: bool = False,
    tail: str = "100",
    since: str | None = None,
    until: str | None = None,
    timestamps: bool = False,
    no_log_prefix: bool = False,
    *,
    common: CommonOptions,
) -> None:
    """Stream the logs of every service, or of the --services named."""
    # NOTE: Invoke cannot parse an optional variadic positional argument, so
    # service names are given as --services a,b instead of positionally.
    from synthorg_tasks.lifecycle.logs import LogsRequest, run_logs

    request = LogsRequest(
        follow=follow,
        tail=tail,
        since=since,
        until=until,
        timestamps=timestamps,
        no_log_prefix=no_log_prefix,
        services=[name.strip() for name in services.split(",") if name.strip()],
    )
    run_logs(request, common.data_dir())


@synthorg_task(
    help={
        "checks": "Comma list of checks, or all (environment, config, files, "
        "compose, ports, images, containers, health, verification, disk).",
        "fix": "Apply the safe fixes of the selected checks.",
        "no_report": "Do not write the diagnostics file.",
    }
)
def doctor(
    c: Any,
    checks: str = "all",
    fix: bool = False,
    no_report: bool = False,
    *,
    common: CommonOptions,
) -> None:
    """Diagnose the install; exit 0 clean, 5 warnings, 3 errors, 4 no engine."""
    from synthorg_tasks.lifecycle.doctor import DoctorRequest, report_doctor, run_doctor

    result = run_doctor(
        DoctorRequest(checks=checks, fix=fix, no_report=no_report),
        common.data_dir(),
        common.out,
    )
    report_doctor(result, common.out, fix=fix)
    if result.exit_code:
        raise Exit(code=result.exit_code)
