"""`datapolicy serve` and `datapolicy worker`: the long-running processes."""

from __future__ import annotations

from pathlib import Path

import click

from datapolicy.cli.options import load_settings, process_options


@click.command()
@click.option(
    "--host", envvar="DATAPOLICY_HOST", help="Address to listen on.  [default: 127.0.0.1]"
)
@click.option(
    "--port",
    envvar="DATAPOLICY_PORT",
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: a free port, named in the log).  [default: 8080]",
)
@click.option(
    "--scenarios/--no-scenarios",
    envvar="DATAPOLICY_SCENARIOS",
    default=None,
    help="Test double: fault injection, time control, request log, reset and snapshots "
    "(docs/testing-with-datapolicy.md). Never in production.",
)
@click.option(
    "--scenarios-file",
    envvar="DATAPOLICY_SCENARIOS_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start the scenario controls with the fault rules, time mode and export failures in "
    "this JSON or YAML file (the shape `datapolicy scenarios show --json` prints); implies "
    "--scenarios.",
)
@click.option(
    "--profile",
    envvar="DATAPOLICY_PROFILE",
    type=click.Choice(["datapolicy", "graph"]),
    help="graph: answer errors exactly as Microsoft Graph does where datapolicy is kinder, "
    "operations running from the start with progress from 0 to 1 "
    "(docs/graph-compatibility.md).  [default: datapolicy]",
)
@click.option(
    "--shutdown-drain-seconds",
    envvar="DATAPOLICY_SHUTDOWN_DRAIN_SECONDS",
    type=click.FloatRange(0, 300),
    help="On SIGTERM, answer /readyz with 503 and keep serving this long before closing the "
    "listener, so that a load balancer stops routing here first.  [default: 5; 0 with --demo]",
)
@click.option(
    "--tls-cert",
    envvar="DATAPOLICY_TLS_CERT",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve https with this certificate chain (PEM); with --tls-key, unless the file "
    "holds the key too.",
)
@click.option(
    "--tls-key",
    envvar="DATAPOLICY_TLS_KEY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key (PEM) of --tls-cert.",
)
@click.option(
    "--tls-self-signed",
    envvar="DATAPOLICY_TLS_SELF_SIGNED",
    is_flag=True,
    default=None,
    help="Serve https with a self-signed certificate for local use, made in the data "
    "directory (its path is printed: give it to clients to trust).",
)
@process_options
def serve(
    host: str | None,
    port: int | None,
    scenarios: bool | None,
    scenarios_file: Path | None,
    profile: str | None,
    shutdown_drain_seconds: float | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_self_signed: bool | None,
    data_dir: Path | None,
    config_file: Path | None,
    database: str | None,
    demo: bool | None,
    workers: int | None,
) -> None:
    """Start the HTTP service (API root /v1.0) with export workers in the same process.

    \b
    Examples:
      datapolicy serve --demo
      datapolicy serve --host 0.0.0.0 --port 9000 --data-dir /var/lib/datapolicy
      datapolicy serve --config datapolicy.toml --workers 0   # API only
      DATAPOLICY_PORT=9000 datapolicy serve --config datapolicy.toml
      datapolicy serve --database postgresql://datapolicy@db.internal/datapolicy
      datapolicy serve --demo --scenarios   # a test double with scenario controls
      datapolicy serve --demo --scenarios-file faults.yaml   # ... starting with these rules
      datapolicy serve --demo --tls-self-signed   # https://127.0.0.1:8080/v1.0
      datapolicy serve --tls-cert chain.pem --tls-key key.pem --host 0.0.0.0
    """
    if tls_self_signed and (tls_cert or tls_key):
        raise click.UsageError("--tls-self-signed makes its own certificate: no --tls-cert/-key")
    if tls_key is not None and tls_cert is None:
        raise click.UsageError("--tls-key needs --tls-cert")
    if scenarios_file is not None and scenarios is False:
        raise click.UsageError("--scenarios-file sets up the scenario controls: no --no-scenarios")
    settings = load_settings(
        config_file,
        long_running=True,
        host=host,
        port=port,
        scenarios=scenarios,
        scenarios_file=scenarios_file,
        profile=profile,
        shutdown_drain_seconds=shutdown_drain_seconds,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_self_signed=tls_self_signed,
        data_dir=data_dir,
        database=database,
        demo=demo,
        workers=workers,
    )
    from datapolicy.server import serve as run  # imported late: `--help` stays fast

    try:
        run(settings)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {settings.host}:{settings.port}: {exc}"
        ) from None


@click.command()
@process_options
@click.option(
    "--metrics-port",
    envvar="DATAPOLICY_METRICS_PORT",
    type=click.IntRange(1, 65535),
    help="Serve this worker's export metrics (GET /metrics) and liveness (GET /healthz) here.",
)
@click.option(
    "--metrics-host",
    envvar="DATAPOLICY_METRICS_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics port listens on.",
)
def worker(
    data_dir: Path | None,
    config_file: Path | None,
    database: str | None,
    demo: bool | None,
    workers: int | None,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run export workers without the API, on the same data directory (or database).

    \b
    Examples:
      datapolicy worker --config datapolicy.toml --workers 4
      datapolicy serve --workers 0 & datapolicy worker   # API and exports apart
      DATAPOLICY_DATABASE=postgresql://datapolicy@db.internal/datapolicy datapolicy worker
      datapolicy worker --metrics-port 9464   # Prometheus scrapes http://127.0.0.1:9464/
    """
    settings = load_settings(
        config_file,
        long_running=True,
        data_dir=data_dir,
        database=database,
        demo=demo,
        workers=workers,
    )
    from datapolicy.server import run_worker

    try:
        run_worker(settings, None if metrics_port is None else (metrics_host, metrics_port))
    except OSError as exc:  # the metrics port
        raise click.ClickException(
            f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc}"
        ) from None
