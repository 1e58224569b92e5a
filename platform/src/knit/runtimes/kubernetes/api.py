"""The Kubernetes API as the controller uses it: objects as plain dicts, through the official
client's asyncio flavour (`kubernetes.aio`, its dynamic client for every kind alike).

Writes are server-side apply under one field manager, so a second apply of the same object
changes nothing and a person's own fields (labels they add, say) are kept.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kubernetes.aio import client, config, watch
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.dynamic import DynamicClient

FIELD_MANAGER = "knit"
WATCH_SECONDS = 300  # a watch ends after this long and is started again from where it was


@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    resource_version: str  # where a watch continues from


class Api:
    def __init__(self, api_client: client.ApiClient, dynamic: DynamicClient) -> None:
        self.api_client = api_client
        self.dynamic = dynamic
        self._resources: dict[tuple[str, str], Any] = {}

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Api:
        """From a kubeconfig file, or inside a pod from its ServiceAccount."""
        configuration = client.Configuration()
        if kubeconfig:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        api_client = client.ApiClient(configuration)
        return cls(api_client, await DynamicClient(api_client))

    async def close(self) -> None:
        await self.api_client.close()

    async def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = await self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: create or update the fields knit manages."""
        resource = await self._resource(obj["apiVersion"], obj["kind"])
        applied = await self.dynamic.server_side_apply(
            resource, body=obj, field_manager=FIELD_MANAGER, force_conflicts=True
        )
        return applied.to_dict()

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the object unless it exists; either way, the object as it is now."""
        resource = await self._resource(obj["apiVersion"], obj["kind"])
        metadata = obj["metadata"]
        try:
            created = await self.dynamic.create(resource, body=obj, namespace=metadata.get("namespace"),
                                                field_manager=FIELD_MANAGER)  # fmt: skip
        except ApiException as error:
            if error.status != 409:
                raise
            created = await self.dynamic.get(resource, name=metadata["name"], namespace=metadata.get("namespace"))
        return created.to_dict()

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = await self._resource(api_version, kind)
        try:
            return (await self.dynamic.get(resource, name=name, namespace=namespace)).to_dict()
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def get_json(self, path: str) -> Any:
        """GET a path of the API server that is not a resource (/openid/v1/jwks, say) as JSON."""
        request = await self.api_client.param_serialize(
            "GET",
            path,
            header_params={"Accept": "application/json, application/jwk-set+json"},
            auth_settings=["BearerToken"],
        )
        response = await self.api_client.call_api(*request)
        body = await response.read()
        if response.status != 200:
            raise ApiException(status=response.status, reason=body.decode(errors="replace")[:200])
        return json.loads(body)

    async def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch (lists in it replace the object's)."""
        resource = await self._resource(api_version, kind)
        await self.dynamic.patch(resource, body=patch, name=name, namespace=namespace,
                                 content_type="application/merge-patch+json")  # fmt: skip

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete it, and what it owns in the background; gone already is fine."""
        resource = await self._resource(api_version, kind)
        try:
            await self.dynamic.delete(resource, name=name, namespace=namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None:  # fmt: skip
        """Replace what `.status` says (a merge patch of the status subresource)."""
        resource = await self._resource(api_version, kind)
        body = {"metadata": {"name": name}, "status": status}
        await self.dynamic.patch(resource.status, body=body, name=name, namespace=namespace,
                                 content_type="application/merge-patch+json")  # fmt: skip

    async def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        resource = await self._resource("apps/v1", "Deployment")
        body = {"spec": {"replicas": replicas}}
        await self.dynamic.patch(resource.scale, body=body, name=deployment, namespace=namespace,
                                 content_type="application/merge-patch+json")  # fmt: skip

    async def list(self, api_version: str, kind: str, label_selector: str | None = None,
                   namespace: str | None = None, field_selector: str | None = None) -> Listing:  # fmt: skip
        """Every object of a kind (in every namespace unless one is given) matching the selectors."""
        resource = await self._resource(api_version, kind)
        listing = (await self.dynamic.get(resource, namespace=namespace, label_selector=label_selector,
                                          field_selector=field_selector)).to_dict()  # fmt: skip
        return Listing(listing["items"], listing["metadata"]["resourceVersion"])

    async def watch(self, api_version: str, kind: str, resource_version: str, label_selector: str | None = None,
                    namespace: str | None = None, field_selector: str | None = None,
                    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:  # fmt: skip
        """(type, object) for each change after `resource_version`, until the server ends the
        watch (about WATCH_SECONDS) or says the version is too old (ApiException 410: list again)."""
        resource = await self._resource(api_version, kind)
        watcher = watch.Watch()
        try:
            async for event in self.dynamic.watch(resource, namespace=namespace, resource_version=resource_version,
                                                  label_selector=label_selector, field_selector=field_selector,
                                                  timeout=WATCH_SECONDS, watcher=watcher):  # fmt: skip
                if event["type"] == "ERROR":
                    status = event["raw_object"]
                    raise ApiException(status=status.get("code", 500), reason=status.get("message", ""))
                yield event["type"], event["raw_object"]
        finally:
            await watcher.close()
