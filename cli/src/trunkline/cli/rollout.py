"""``trunkline rollout status|promote|abort NAME``: watch and steer an AgentRollout.

Talks to the Kubernetes API (``--kubeconfig``, else ``$KUBECONFIG``/``~/.kube/config``, else
the pod's service account), never to the operator: ``promote`` and ``abort`` set
``spec.promote`` / ``spec.abort`` and the operator acts on them; ``status`` prints what the
operator recorded (phase, checks, conditions, last metric results, recent Events).
``--wait`` makes ``promote``/``abort`` wait until the rollout has reached a final phase.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

GROUP, VERSION, PLURAL, KIND = "trunkline.dev", "v1alpha1", "agentrollouts", "AgentRollout"
FINAL = ("Succeeded", "Failed")


class RolloutCliError(RuntimeError):
    """A problem worth one clear line (not found, no cluster, forbidden)."""


def add_rollout_parser(subparsers: Any) -> None:
    """Add ``rollout`` to the ``trunkline`` command's subparsers."""
    p = subparsers.add_parser("rollout", help="status, promote or abort an AgentRollout")
    actions = p.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", help="the AgentRollout's name")
    common.add_argument("-n", "--namespace", default=None, help="default: the context's")
    common.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG, ~/.kube/config")
    status = actions.add_parser("status", parents=[common], help="phase, checks, conditions")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    for action, text in (("promote", "promote the candidate now"),
                         ("abort", "stop and roll back now")):  # fmt: skip
        cmd = actions.add_parser(action, parents=[common], help=text)
        cmd.add_argument("--wait", type=float, metavar="SECONDS",
                         help="wait up to SECONDS for Succeeded/Failed")  # fmt: skip
    p.set_defaults(func=run)


def _api(kubeconfig: Path | None) -> tuple[Any, str]:
    from kubernetes import client, config  # noqa: PLC0415  (only this command needs it)

    path = str(kubeconfig) if kubeconfig is not None else None
    new_client: Any = config.new_client_from_config
    contexts: Any = config.list_kube_config_contexts
    try:
        try:
            api = new_client(config_file=path)
            _, context = contexts(config_file=path)
        except config.ConfigException:
            if kubeconfig is not None:
                raise
            configuration = client.Configuration()
            in_cluster: Any = config.load_incluster_config
            in_cluster(client_configuration=configuration)
            return client.ApiClient(configuration), "default"
    except (config.ConfigException, OSError) as exc:
        raise RolloutCliError(f"no Kubernetes configuration: {exc}") from exc
    namespace = str((context or {}).get("context", {}).get("namespace") or "default")
    return api, namespace


def _call(fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            raise RolloutCliError(f"no {what}") from exc
        if exc.status == 403:
            raise RolloutCliError(f"forbidden: {what}: {exc.reason}") from exc
        raise RolloutCliError(f"{what}: API error {exc.status} {exc.reason}") from exc
    except (HTTPError, OSError) as exc:
        raise RolloutCliError(f"the Kubernetes API is unreachable: {exc}") from exc


def _get(api: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client  # noqa: PLC0415

    found: dict[str, Any] = _call(
        client.CustomObjectsApi(api).get_namespaced_custom_object,
        GROUP, VERSION, namespace, PLURAL, name,
        what=f"{KIND} {name!r} in namespace {namespace!r}",
    )  # fmt: skip
    return found


def _events(api: Any, namespace: str, name: str, limit: int = 8) -> list[Any]:
    from kubernetes import client  # noqa: PLC0415

    selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
    listed = _call(
        client.CoreV1Api(api).list_namespaced_event, namespace, field_selector=selector,
        what=f"events of {name!r}",
    )  # fmt: skip
    items = sorted(listed.items, key=lambda e: str(e.last_timestamp or e.event_time or ""))
    return list(items[-limit:])


def render(body: dict[str, Any], events: list[Any]) -> str:
    """The human view of one rollout (what ``status`` prints)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    meta = body["metadata"]
    analysis = spec.get("analysis") or {}
    limits = ", ".join(
        f"{label} {analysis[key]}"
        for label, key in (("promote at", "minIterations"), ("fail at", "failureLimit"))
        if key in analysis
    )
    lines = [
        f"{KIND} {meta['namespace']}/{meta['name']}: agent {spec.get('agent')} "
        f"{spec.get('stableVersion')} -> {spec.get('candidateVersion')}",
        f"  phase     {status.get('phase', '(not seen by the operator yet)')}",
        f"  active    {status.get('activeVersion', spec.get('stableVersion'))}",
        f"  checks    {status.get('iterations', 0)} passed, {status.get('failedChecks', 0)} "
        f"failed, {status.get('inconclusiveChecks', 0)} inconclusive"
        + (f" ({limits})" if limits else ""),
    ]
    if status.get("message"):
        lines.append(f"  message   {status['message']}")
    if status.get("conditions"):
        lines.append("  conditions:")
        for c in status["conditions"]:
            lines.append(f"    {c['type']:<13} {c['status']:<8} {c.get('reason', '')}")
    if status.get("results"):
        lines.append("  last check:")
        for r in status["results"]:
            value = "-" if r.get("value") is None else f"{r['value']:g}"
            lines.append(
                f"    {r['name']:<22} {r['outcome']:<13} {value:>10}  {r.get('message', '')}"
            )
    if events:
        lines.append("  events:")
        for e in events:
            lines.append(f"    {e.type:<8} {e.reason:<18} {e.message}")
    return "\n".join(lines)


def _patch(api: Any, namespace: str, name: str, field: str) -> None:
    from kubernetes import client  # noqa: PLC0415

    _call(
        client.CustomObjectsApi(api).patch_namespaced_custom_object,
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {field: True}},
        what=f"{KIND} {name!r} in namespace {namespace!r}",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        api, default_ns = _api(args.kubeconfig)
        namespace = args.namespace or default_ns
        if args.action == "status":
            body = _get(api, namespace, args.name)
            if args.json:
                print(json.dumps(body.get("status") or {}, indent=2))
            else:
                print(render(body, _events(api, namespace, args.name)))
            return 0
        body = _get(api, namespace, args.name)
        phase = (body.get("status") or {}).get("phase")
        if phase in FINAL:
            print(f"{args.name} is already {phase}; nothing to {args.action}", file=sys.stderr)
            return 1
        _patch(api, namespace, args.name, args.action)
        print(f"{args.name}: {args.action} requested")
        if args.wait:
            deadline = time.monotonic() + args.wait
            while time.monotonic() < deadline:
                phase = (_get(api, namespace, args.name).get("status") or {}).get("phase")
                if phase in FINAL:
                    print(f"{args.name}: {phase}")
                    return 0 if (phase == "Succeeded") == (args.action == "promote") else 1
                time.sleep(0.5)
            print(f"{args.name}: still {phase} after {args.wait:g}s", file=sys.stderr)
            return 1
        return 0
    except RolloutCliError as exc:
        print(f"trunkline rollout: {exc}", file=sys.stderr)
        return 1
