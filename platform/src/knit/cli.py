"""The `knit` command: `knit dev` runs manifests on this machine; the other commands talk
to a running `knit dev` (or, for `render`, `crds` and `autoscaler simulate`, to nobody);
`knit controller` is the Kubernetes runtime."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from knit.admission import load_manifests
from knit.autoscaling.cli import add_parser as add_autoscaler_parser
from knit.client import ClusterControl, Control, ControlError, LocalControl
from knit.control.render import render_service
from knit.control_token import DEFAULT_PORT, TOKEN_ENV, token_file
from knit.gateway import limits as gateway_limits
from knit.gateway.haproxy import HaproxyMissing
from knit.kafka.embedded import EmbeddedBroker
from knit.kafka.settings import BOOTSTRAP_ENV, KafkaUnavailable, wait_until_reachable
from knit.new import TEMPLATES, NewAppError
from knit.new import create as create_app
from knit.new import update as update_app
from knit.resources.crds import all_crds
from knit.resources.loading import InvalidManifests, Manifests, read_manifests
from knit.resources.model import KINDS
from knit.runtimes.local.control import serve_control
from knit.runtimes.local.dashboard import serve_dashboard
from knit.runtimes.local.processes import LogSink, ProcessFailed
from knit.runtimes.local.runtime import DATA_PLANES, LocalRuntime, Options
from knit.serving.state import InvalidApply, RevisionHealth, ServingState

STATE_DIR = Path(".knit")


def _fail(message: str, code: int = 1) -> int:
    print(f"knit: {message}", file=sys.stderr)
    return code


def _problems(headline: str, problems: list[str], code: int = 2) -> int:
    return _fail(headline + "\n  " + "\n  ".join(problems), code)


# --- knit dev --------------------------------------------------------------------------


async def _serve(manifests: Manifests, runtime: LocalRuntime, control_port: int, kafka_note: str) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await runtime.start()
    except OSError as error:
        return _fail(f"the gateway cannot listen on 127.0.0.1:{runtime.options.port} ({error.strerror}); "
                     "stop what uses that port or pass --port")  # fmt: skip
    control, port = await serve_control(runtime, control_port)
    dashboard, dashboard_url = await serve_dashboard(runtime)
    try:
        applying = asyncio.create_task(runtime.apply(manifests))
        stop_wait = asyncio.create_task(stopping.wait())
        await asyncio.wait({applying, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not applying.done():
            applying.cancel()
            return 0
        try:
            applying.result()
        except InvalidApply as error:
            return _problems("the manifests cannot be applied, nothing was started:", error.problems)
        settle = asyncio.create_task(runtime.wait_settled(runtime.options.ready_timeout))
        await asyncio.wait({settle, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            settle.cancel()
            return 0
        if settle.exception() is not None:  # the banner says which Services are not ready
            print(f"knit dev: {settle.exception()}", flush=True)
        _print_banner(runtime, port, dashboard_url, kafka_note)
        await stopping.wait()
        return 0
    finally:
        print("knit dev: stopping", flush=True)
        await dashboard.cleanup()
        await control.cleanup()
        await runtime.stop()


def _print_banner(runtime: LocalRuntime, control_port: int, dashboard_url: str, kafka_note: str) -> None:
    print("\nknit dev is ready.", flush=True)
    for service in runtime.services():
        status = service["status"]
        ready = _condition(status, "Ready")
        state = "Ready" if ready["status"] == "True" else f"NOT READY: {ready['reason']} {ready['message']}".strip()
        where = status["url"] + "/" if status["url"] else f"cluster-local {status['address']['url']}"
        print(f"  {service['name']:<22} {where}  ({state})")
    print(f"  {'gateway':<22} http://127.0.0.1:{runtime.port} (routes by Host: <service>.<namespace>.localhost)")
    print(f"  {'control API':<22} http://127.0.0.1:{control_port} (knit service list, knit apply -f …, /metrics; "
          f"token in {token_file(control_port)})")  # fmt: skip
    print(f"  {'dashboard':<22} {dashboard_url} (read-only: Services, instances, requests/s, sources)")
    print(f"  {'kafka':<22} {kafka_note}")
    urls = runtime.public_urls()
    if urls:
        print(f"\nOpen {next(iter(urls.values()))} — Ctrl-C stops everything.\n", flush=True)
    else:
        print("\nNo Service is public (all are cluster-local): reach them through the gateway by Host — "
              "Ctrl-C stops everything.\n", flush=True)  # fmt: skip


def dev(args: argparse.Namespace) -> int:
    try:
        manifests = load_manifests(args.filename)
    except InvalidManifests as error:
        return _problems("the manifests have problems, nothing was started:", error.problems)

    broker: EmbeddedBroker | None = None
    external = os.environ.get(BOOTSTRAP_ENV)
    try:
        if external:
            wait_until_reachable(external, time.monotonic() + args.kafka_timeout)
            bootstrap, kafka_note = external, f"{external} (from {BOOTSTRAP_ENV})"
        else:
            log_path = STATE_DIR / "logs" / "kafka.log"
            broker = EmbeddedBroker(log_path, port=args.kafka_port)
            bootstrap = broker.start()
            kafka_note = f"{bootstrap} (embedded, memory only; log: {log_path})"
    except (KafkaUnavailable, ValueError) as error:
        return _fail(str(error))

    options = Options(
        port=args.port, ready_timeout=args.ready_timeout, activation_timeout=args.activation_timeout,
        gateway_limits=gateway_limits.from_arguments(args), data_plane=args.data_plane,
    )  # fmt: skip
    try:
        runtime = LocalRuntime(bootstrap, LogSink(), options, state_dir=STATE_DIR)
        return asyncio.run(_serve(manifests, runtime, args.control_port, kafka_note))
    except (ProcessFailed, ValueError, HaproxyMissing) as error:
        return _fail(str(error))
    finally:
        if broker:
            broker.stop()


# --- commands that talk to knit dev ------------------------------------------------------------


def _mark(status: Any) -> str:
    return {"True": "++", "False": "!!"}.get(status, "??")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)  # fmt: skip


def _condition(status: dict[str, Any], kind: str) -> dict[str, str]:
    """A condition of a Knative-shaped status (knit.control.status)."""
    return next(c for c in status["conditions"] if c["type"] == kind)


def apply(args: argparse.Namespace) -> int:
    control = _control(args)
    try:
        # Admitted here first, against the running knit dev's context, so problems name the
        # user's own paths and quote the files (the control API admits again, without quoting).
        load_manifests(args.filename, control.admission_context())
        changes = control.apply(args.filename)
    except InvalidManifests as error:
        return _problems("the manifests have problems, nothing was applied:", error.problems)
    except ControlError as error:
        return _problems("nothing was applied:", error.problems)
    print("\n".join(changes))
    return 0


def _control(args: argparse.Namespace) -> Control:
    if args.kubeconfig or args.context:
        return ClusterControl(args.kubeconfig, args.context)
    return LocalControl(args.control)


def _delete(control: Control, objects: list[str]) -> int:
    try:
        changes = control.delete(objects)
    except ControlError as error:
        return _problems("nothing was deleted:", error.problems)
    print("\n".join(changes))
    return 0


def delete(args: argparse.Namespace) -> int:
    """`knit delete -f FILES` (what the files define) or `knit delete KIND NAME`, as kubectl."""
    control = _control(args)
    if args.filename:
        if args.kind or args.name:
            return _fail("name objects either with -f FILES or as KIND NAME, not both", 2)
        try:
            manifests = read_manifests(args.filename, control.admission_context().known)
        except InvalidManifests as error:
            return _problems("the manifests have problems, nothing was deleted:", error.problems)
        except ControlError as error:
            return _problems("nothing was deleted:", error.problems)
        return _delete(control, [f"{r.kind}/{r.namespace}/{r.name}" for r in manifests.resources])
    if not (args.kind and args.name):
        return _fail("name what to delete: -f FILES, or KIND NAME (e.g. `knit delete kafkasource feed`)", 2)
    kind = next((k for k in KINDS if k.lower() == args.kind.lower()), None)
    if kind is None:
        return _fail(f"unknown kind {args.kind!r}; knit knows {', '.join(KINDS)}", 2)
    return _delete(control, [f"{kind}/{args.namespace}/{args.name}"])


def service_delete(args: argparse.Namespace) -> int:
    return _delete(_control(args), [f"Service/{args.namespace}/{args.name}"])


def eventing_list(args: argparse.Namespace) -> int:
    try:
        resources = _control(args).eventing()
    except ControlError as error:
        return _problems("cannot list the eventing objects:", error.problems, 1)
    rows = [["KIND", "NAME", "READY", "REASON", "MESSAGE"]]
    for row in resources:
        ready = row["ready"]
        # Ready's message says what is wrong; when nothing is, the last condition with a message
        # says what it does (Deployed: where it delivers; Addressable: the Broker's address).
        said = [c["message"] for c in row["conditions"] if c["message"]]
        message = ready["message"] if ready["status"] != "True" else (said[-1] if said else "")
        rows.append([row["kind"], row["name"], ready["status"], ready["reason"], message])
    print(_table(rows))
    return 0


def service_list(args: argparse.Namespace) -> int:
    try:
        services = _control(args).services()
    except ControlError as error:
        return _problems("cannot list Services:", error.problems, 1)
    rows = [["NAME", "URL", "LATEST", "READY", "REASON"]]
    for service in services:
        status = service["status"]
        ready = _condition(status, "Ready")
        latest = status["latestReadyRevisionName"] or ""
        rows.append([service["name"], status["url"] or "(cluster-local)", latest, ready["status"], ready["reason"]])
    print(_table(rows))
    return 0


def _get_service(args: argparse.Namespace) -> dict[str, Any]:
    return _control(args).service(args.namespace, args.name)


def _print_service(service: dict[str, Any]) -> None:
    status = service["status"]
    print(f"Name:        {service['name']}")
    print(f"Namespace:   {service['namespace']}")
    print(f"URL:         {status['url'] or '(none: cluster-local)'}")
    print(f"Address:     {status['address']['url']}")
    print(f"Audience:    {status['address']['audience']}")
    print(f"Generation:  {status['observedGeneration']}")
    print("\nRevisions:")
    for revision in service["revisions"]:
        share = f"{revision['percent']}%" if revision["percent"] else ""
        latest = " @latest" if revision["latest"] else ""
        tags = "".join(f" #{tag}" for tag in revision["tags"])
        health = {True: "ready", False: "FAILED", None: "starting"}[revision["ready"]]
        scale = f"scale {revision['actual_scale']}/{revision['desired_scale']}"
        print(f"  {share:>5}{latest} {revision['name']}{tags} [{health}] {scale} (generation {revision['generation']})")
        if revision["ready"] is False:
            print(f"         {revision['reason']}: {revision['message']}")
    print("\nConditions:")
    rows = [["OK", "TYPE", "REASON", "MESSAGE"]]
    rows += [[_mark(c["status"]), c["type"], c["reason"], c["message"]] for c in status["conditions"]]
    print("  " + _table(rows).replace("\n", "\n  "))


def service_describe(args: argparse.Namespace) -> int:
    try:
        _print_service(_get_service(args))
    except ControlError as error:
        return _problems(f"cannot describe Service {args.name}:", error.problems, 1)
    return 0


def service_update(args: argparse.Namespace) -> int:
    try:
        service = _control(args).edit_traffic(
            args.namespace, args.name, _split_commas(args.traffic), args.tag, args.untag
        )
    except ControlError as error:
        return _problems(f"Service {args.name} was not changed:", error.problems)
    _print_service(service)
    return 0


def _split_commas(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def revision_list(args: argparse.Namespace) -> int:
    try:
        services = _control(args).services()
    except ControlError as error:
        return _problems("cannot list Revisions:", error.problems, 1)
    rows = [["NAME", "SERVICE", "TRAFFIC", "TAGS", "GENERATION", "READY", "SCALE", "REASON"]]
    for service in services:
        if args.service and service["name"] != args.service:
            continue
        for revision in service["revisions"]:
            ready = {True: "True", False: "False", None: "Unknown"}[revision["ready"]]
            rows.append([
                revision["name"], service["name"], f"{revision['percent']}%" if revision["percent"] else "",
                ",".join(revision["tags"]), str(revision["generation"]), ready,
                f"{revision['actual_scale']}/{revision['desired_scale']}", revision["reason"],
            ])  # fmt: skip
    print(_table(rows))
    return 0


def route_describe(args: argparse.Namespace) -> int:
    try:
        service = _get_service(args)
    except ControlError as error:
        return _problems(f"cannot describe Route {args.name}:", error.problems, 1)
    status = service["status"]
    print(f"Name:       {service['name']}")
    print(f"Namespace:  {service['namespace']}")
    print(f"URL:        {status['url'] or '(none: cluster-local)'}")
    print(f"Address:    {status['address']['url']}")
    print("\nTraffic targets:")
    rows = [["PERCENT", "REVISION", "LATEST", "TAG", "URL"]]
    for target in status["traffic"]:
        rows.append([
            f"{target['percent']}%", target["revisionName"] or "(none ready yet)",
            "yes" if target.get("latestRevision") else "", target.get("tag", ""), target.get("url", ""),
        ])  # fmt: skip
    print("  " + _table(rows).replace("\n", "\n  "))
    ready = _condition(status, "RoutesReady")
    print(f"\nRoutesReady: {ready['status']} {ready['reason']} {ready['message']}".rstrip())
    return 0


def render(args: argparse.Namespace) -> int:
    """A dry run: what applying the manifests to an empty knit would derive, assuming each
    new Revision becomes ready."""
    try:
        manifests = load_manifests(args.filename)
        state = ServingState()
        for change in state.apply(manifests.services):
            if change.new_revision:
                state.set_health(change.new_revision.name, RevisionHealth(True))
    except (InvalidManifests, InvalidApply) as error:
        return _problems("the manifests have problems:", error.problems)
    port = "" if args.port == 80 else f":{args.port}"

    def url_of(service: str, namespace: str, tag: str | None) -> str | None:
        record = state.record(namespace, service)
        if record.service.cluster_local:
            return None
        return f"http://{tag + '-' if tag else ''}{service}.{namespace}.localhost{port}"

    objects = [obj for record in state.records.values() for obj in render_service(state, record, url_of)]
    print("# knit render: derived objects, assuming every new Revision becomes ready")
    print(yaml.safe_dump_all(objects, sort_keys=False), end="")
    return 0


def controller(args: argparse.Namespace) -> int:
    """The Kubernetes runtime's controller and gateway (in the cluster, or outside with a kubeconfig)."""
    # Imported here: the Kubernetes client takes a while to import, and only this command needs it.
    from knit.runtimes.kubernetes.controller import serve
    from knit.runtimes.kubernetes.runtime import ClusterOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    image = {"adapter_image": args.adapter_image} if args.adapter_image else {}
    options = ClusterOptions(
        kafka_bootstrap=args.kafka_bootstrap, domain=args.domain, public_port=args.public_port, **image,
        gateway_port=args.gateway_port, health_port=args.health_port, activation_timeout=args.activation_timeout,
        gateway_limits=gateway_limits.from_arguments(args),
    )  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.kubeconfig, args.identity, options))
    return 0


def crds(_: argparse.Namespace) -> int:
    """The CustomResourceDefinitions of the knit groups, generated from the resource models."""
    print("# knit crds: generated from knit.resources.model; do not edit (make crds writes manifests/platform/)")
    print(yaml.safe_dump_all(all_crds(), sort_keys=False), end="")
    return 0


# --- the parser -------------------------------------------------------------------------------


def _add_control(parser: argparse.ArgumentParser) -> None:
    default = f"$KNIT_CONTROL_URL or http://127.0.0.1:{DEFAULT_PORT}"
    parser.add_argument("--control", help=f"the control API of knit dev (default: {default}); its token is read "
                        f"from the file knit dev wrote, {token_file(DEFAULT_PORT).parent}/<port>.json, "
                        f"or ${TOKEN_ENV}")  # fmt: skip
    parser.add_argument("--kubeconfig", help="talk to knit on a Kubernetes cluster through this kubeconfig instead")
    parser.add_argument("--context", help="talk to knit on the cluster of this kubeconfig context instead")


def _add_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", action="append", required=True, type=Path,
                        help="a manifest file or a folder of them (repeatable)")  # fmt: skip


def _add_service_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("-n", "--namespace", default="default")
    _add_control(parser)


# --- knit new ----------------------------------------------------------------------------


def new_app(args: argparse.Namespace) -> int:
    try:
        if args.update:
            if args.name or args.source or args.force:
                return _fail("knit new --update takes only --dir (the app, default .): the app's "
                             ".copier-answers.yml says its name, template and knit clone", 2)  # fmt: skip
            app = args.dir or Path(".")
            commit = update_app(app)
            print(f"{app}: brought up to the templates of knit {commit[:12]}; see `git -C {app} diff`, "
                  "resolve any conflict markers, run its tests, commit")  # fmt: skip
            return 0
        if args.name is None:
            return _fail(f"name the app: knit new NAME [--template {'|'.join(TEMPLATES)}]", 2)
        made = create_app(args.name, args.template, args.dir or Path(args.name), source=args.source, force=args.force)
    except NewAppError as error:
        return _fail(str(error), 2)
    print(f"made {made.path}, a {made.template} app, from the templates of knit {made.commit[:12]}; next:")
    print(f"  cd {made.path}")
    print("  make test    # its tests, with a real Kafka broker")
    print("  make dev     # run it on this machine, as knit dev")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="knit", description="Knative's model made small.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("dev", help="run manifests on this machine: Kafka, the gateway, every Service and source")
    _add_files(run)
    run.add_argument("--port", type=int, default=8080, help="the gateway's port (default 8080; 0 = a free one)")
    run.add_argument("--control-port", type=int, default=DEFAULT_PORT,
                     help=f"the control API's port (default {DEFAULT_PORT}; 0 = a free one)")  # fmt: skip
    run.add_argument("--kafka-port", type=int, default=0, help="the embedded Kafka broker's port (default: a free one)")
    run.add_argument("--kafka-timeout", type=float, default=5.0,
                     help=f"seconds to wait for the broker named by {BOOTSTRAP_ENV}")  # fmt: skip
    run.add_argument("--ready-timeout", type=float, default=60.0, help="seconds an instance has to become ready")
    run.add_argument("--activation-timeout", type=float, default=60.0,
                     help="seconds a request waits for an instance of its Revision before a 503")  # fmt: skip
    run.add_argument("--data-plane", choices=DATA_PLANES, default=DATA_PLANES[0],
                     help="who carries requests to ready instances: knit's Python gateway (default), or HAProxy "
                     "with the Python gateway as the activator (experimental; see docs/serving.md)")  # fmt: skip
    gateway_limits.add_arguments(run)
    run.set_defaults(handler=dev)

    apply_ = commands.add_parser("apply", help="apply manifests to a running knit dev")
    _add_files(apply_)
    _add_control(apply_)
    apply_.set_defaults(handler=apply)

    delete_ = commands.add_parser("delete", help="delete objects from a running knit dev: -f FILES, or KIND NAME")
    delete_.add_argument("kind", nargs="?", help="e.g. service, kafkasource, pingsource, broker, trigger")
    delete_.add_argument("name", nargs="?")
    delete_.add_argument("-n", "--namespace", default="default")
    delete_.add_argument("-f", "--filename", action="append", type=Path,
                         help="delete what these manifest files or folders define (repeatable)")  # fmt: skip
    _add_control(delete_)
    delete_.set_defaults(handler=delete)

    render_ = commands.add_parser("render", help="print the Configurations, Revisions and Routes manifests derive")
    _add_files(render_)
    render_.add_argument("--port", type=int, default=8080, help="the gateway port to write into URLs")
    render_.set_defaults(handler=render)

    kube = commands.add_parser("controller", help="run the Kubernetes runtime: controller, gateway and autoscaler")
    kube.add_argument("--kubeconfig", help="outside a cluster: its kubeconfig (default: the pod's ServiceAccount)")
    kube.add_argument("--identity", default=socket.gethostname(), help="this replica's name in the Lease")
    kube.add_argument("--gateway-port", type=int, default=8080, help="where the gateway listens (0 = a free port)")
    kube.add_argument("--public-port", type=int, default=8080, help="the port people reach the gateway on, for URLs")
    kube.add_argument("--health-port", type=int, default=8081,
                      help="/readyz: 200 once this replica leads and knows every route")  # fmt: skip
    kube.add_argument("--domain", default="localhost", help="public hosts are SERVICE.NAMESPACE.DOMAIN")
    kube.add_argument("--kafka-bootstrap", default=os.environ.get(BOOTSTRAP_ENV, ""),
                      help="Kafka for the instances and eventing adapters (host:port)")  # fmt: skip
    kube.add_argument(
        "--adapter-image", help="the image eventing adapters run in: knit's own (default: knit/platform:dev)"
    )
    kube.add_argument("--activation-timeout", type=float, default=60.0,
                      help="seconds a request waits for a pod of its Revision before a 503")  # fmt: skip
    gateway_limits.add_arguments(kube)
    kube.set_defaults(handler=controller)

    crds_ = commands.add_parser("crds", help="print the CustomResourceDefinitions of the knit groups (for Kubernetes)")
    crds_.set_defaults(handler=crds)

    service = commands.add_parser("service", help="Services").add_subparsers(dest="action", required=True)
    listing = service.add_parser("list", help="list Services")
    _add_control(listing)
    listing.set_defaults(handler=service_list)
    describe = service.add_parser("describe", help="a Service: URLs, Revisions, traffic, conditions")
    _add_service_name(describe)
    describe.set_defaults(handler=service_describe)
    update = service.add_parser("update", help="change a Service's traffic split and tags")
    _add_service_name(update)
    update.add_argument("--traffic", action="append", default=[],
                        help="REF=PERCENT[,REF=PERCENT…]; REF is a Revision, @latest or a tag")  # fmt: skip
    update.add_argument("--tag", action="append", default=[], help="REF=TAG: give a Revision (or @latest) a tag")
    update.add_argument("--untag", action="append", default=[], help="TAG: remove a tag")
    update.set_defaults(handler=service_update)
    remove = service.add_parser("delete", help="delete a Service with its Revisions and Route")
    _add_service_name(remove)
    remove.set_defaults(handler=service_delete)

    eventing = commands.add_parser("eventing", help="Brokers, Triggers and sources").add_subparsers(
        dest="action", required=True
    )
    eventing_listing = eventing.add_parser("list", help="list Brokers, Triggers and sources with their Ready state")
    _add_control(eventing_listing)
    eventing_listing.set_defaults(handler=eventing_list)

    revision = commands.add_parser("revision", help="Revisions").add_subparsers(dest="action", required=True)
    revisions = revision.add_parser("list", help="list Revisions")
    revisions.add_argument("-s", "--service", help="only this Service's")
    _add_control(revisions)
    revisions.set_defaults(handler=revision_list)

    route = commands.add_parser("route", help="Routes").add_subparsers(dest="action", required=True)
    route_show = route.add_parser("describe", help="a Route: its URL and traffic targets")
    _add_service_name(route_show)
    route_show.set_defaults(handler=route_describe)

    new = commands.add_parser("new", help="start a new app from a template; --update brings one up to newer templates")
    new.add_argument("name", nargs="?", help="the app's name (a DNS-1035 label, e.g. word-counter)")
    new.add_argument("--template", choices=TEMPLATES, default=TEMPLATES[0],
                     help="processor: events from Kafka, results to K_SINK (the default); web: a Socket.IO "
                     "front end publishing to Kafka and pushing to browsers; trigger: a service behind a "
                     "Broker/Trigger fed by a PingSource")  # fmt: skip
    new.add_argument("--dir", type=Path, help="where to make it (default: ./NAME); with --update, the app (default: .)")
    new.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    new.add_argument(
        "--from", dest="source", type=Path, help="the knit clone holding the templates (default: this knit's)"
    )  # an update uses the clone the app was made from
    new.add_argument("--update", action="store_true", help="bring the app in --dir up to the newest templates")
    new.set_defaults(handler=new_app)

    add_autoscaler_parser(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with contextlib.suppress(BrokenPipeError):
        return args.handler(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
