"""The store over HTTP: :class:`~agentlightning_core.remote.server.LightningStoreServer` and
:class:`~agentlightning_core.remote.client.LightningStoreClient` (see docs/http.md).

Nothing is imported here, so ``import agentlightning_core.remote._protocol`` stays light;
uvicorn and aiohttp load only with the server and client modules.
"""

__all__: list[str] = []
